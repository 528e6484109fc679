package dialplans

import "testing"

func TestSample(t *testing.T) {
	if ps := Check("sample"); len(ps) > 0 {
		for _, p := range ps {
			t.Error(p)
		}
	}
	s, err := Load("sample")
	if err != nil {
		t.Fatal(err)
	}
	demo := s.CustomerByDomain("DEMO.callpark.test")
	if demo == nil || demo.Name != "demo" || demo.Rule.Name != "pbx-default" {
		t.Fatalf("demo = %+v", demo)
	}
	if len(demo.Accounts) != 5 || !demo.Account("200").Can(PermCallControl) || demo.Account("999").Can(PermCallControl) {
		t.Errorf("demo accounts wrong")
	}
	if s.Rule("pbx-64") == nil || s.Rule("pbx-64").Park != "64" {
		t.Errorf("pbx-64 rule missing")
	}
	if got := len(s.Customers()); got != 2 {
		t.Errorf("customers = %d, want 2", got)
	}
}
