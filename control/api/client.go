package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
)

// Client calls the API of one customer.
type Client struct {
	NC       *nats.Conn
	Customer string
	Token    string
}

// Park parks the other party of an account's call.
func (c *Client) Park(ctx context.Context, r ParkRequest) (*ParkReply, error) {
	var out ParkReply
	return &out, c.Do(ctx, OpPark, r, &out)
}

// Retrieve rings an account or URI with a parked call.
func (c *Client) Retrieve(ctx context.Context, r RetrieveRequest) (*RetrieveReply, error) {
	var out RetrieveReply
	return &out, c.Do(ctx, OpRetrieve, r, &out)
}

// Slots lists the slots.
func (c *Client) Slots(ctx context.Context) (*SlotsReply, error) {
	var out SlotsReply
	return &out, c.Do(ctx, OpSlots, Request{}, &out)
}

// Parked lists the parked calls.
func (c *Client) Parked(ctx context.Context) (*ParkedReply, error) {
	var out ParkedReply
	return &out, c.Do(ctx, OpParked, Request{}, &out)
}

// Calls lists an account's calls.
func (c *Client) Calls(ctx context.Context, account string) (*CallsReply, error) {
	var out CallsReply
	return &out, c.Do(ctx, OpCalls, CallsRequest{Account: account}, &out)
}

// Do sends req (any JSON value, or raw []byte) to op and decodes the reply
// into out. A failed request is an *Error.
func (c *Client) Do(ctx context.Context, op string, req, out any) error {
	data, ok := req.([]byte)
	if !ok {
		var err error
		if data, err = json.Marshal(req); err != nil {
			return err
		}
	}
	m := nats.NewMsg(Subject(c.Customer, op))
	m.Data = data
	if c.Token != "" {
		m.Header.Set(TokenHeader, c.Token)
	}
	res, err := c.NC.RequestMsgWithContext(ctx, m)
	if err != nil {
		if errors.Is(err, nats.ErrNoResponders) {
			return &Error{Code: CodeUnavailable, Message: "no callpark API service is running"}
		}
		return fmt.Errorf("api %s: %w", op, err)
	}
	if code := res.Header.Get(micro.ErrorCodeHeader); code != "" {
		var er ErrorReply
		if json.Unmarshal(res.Data, &er) == nil && er.Error != nil {
			return er.Error
		}
		return &Error{Code: code, Message: res.Header.Get(micro.ErrorHeader)}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(res.Data, out); err != nil {
		return fmt.Errorf("api %s: bad reply: %w", op, err)
	}
	return nil
}
