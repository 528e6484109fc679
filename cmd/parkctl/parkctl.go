package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/callpark/callpark/control/api"
	"github.com/callpark/callpark/events"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

const usage = `parkctl drives callpark's call-control API.

Usage:
  parkctl [flags] slots                      every slot, free or busy
  parkctl [flags] parked                     every parked call, its age and due return
  parkctl [flags] calls --account 200        an account's current calls
  parkctl [flags] park --account 200 (--slot 1 | --extension 333 | --random) [--call ID]
                                             park the other party of the account's call
  parkctl [flags] retrieve (--slot 1 | --extension 333 | --random 7250) --to 201|sip:user@host
                                             ring an account or URI with a parked call
  parkctl [flags] watch [--json] [--all]     print live events until interrupted

Flags (before or after the command):
  --nats URL          NATS server (env PARKCTL_NATS, default nats://127.0.0.1:4222)
  --customer NAME     customer (env PARKCTL_CUSTOMER)
  --token TOKEN       the customer's API token (env PARKCTL_TOKEN)
  --timeout DURATION  request timeout (default 10s)

Exit status: 0 success, 1 the API or NATS refused or failed, 2 usage.
`

// common are the flags every command takes.
type common struct {
	nats, customer, token string
	timeout               time.Duration
}

func (c *common) register(fs *flag.FlagSet, def common) {
	fs.StringVar(&c.nats, "nats", def.nats, "NATS server URL")
	fs.StringVar(&c.customer, "customer", def.customer, "customer")
	fs.StringVar(&c.token, "token", def.token, "API token")
	fs.DurationVar(&c.timeout, "timeout", def.timeout, "request timeout")
}

// cli is one run of parkctl.
type cli struct {
	stdout, stderr io.Writer
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) int {
	c := &cli{stdout: stdout, stderr: stderr}
	def := common{
		nats:     cmp.Or(getenv("PARKCTL_NATS"), nats.DefaultURL),
		customer: getenv("PARKCTL_CUSTOMER"),
		token:    getenv("PARKCTL_TOKEN"),
		timeout:  10 * time.Second,
	}
	var g common
	gfs := c.flagSet("parkctl")
	g.register(gfs, def)
	if err := gfs.Parse(args); err != nil {
		return c.usageError(err)
	}
	rest := gfs.Args()
	if len(rest) == 0 {
		return c.usageError(errors.New("no command"))
	}
	cmd, rest := rest[0], rest[1:]
	if cmd == "help" {
		fmt.Fprint(stdout, usage)
		return exitOK
	}

	var o common
	fs := c.flagSet("parkctl " + cmd)
	o.register(fs, g)
	var account, slot, ext, random, callID, to string
	var anyRandom, asJSON, all bool
	switch cmd {
	case "slots", "parked":
	case "calls":
		fs.StringVar(&account, "account", "", "account (extension)")
	case "park":
		fs.StringVar(&account, "account", "", "account whose call is parked")
		fs.StringVar(&callID, "call", "", "the account's call id (default: its current call)")
		fs.StringVar(&slot, "slot", "", "slot to park on")
		fs.StringVar(&ext, "extension", "", "extension to park on")
		fs.BoolVar(&anyRandom, "random", false, "park on a random number")
	case "retrieve":
		fs.StringVar(&slot, "slot", "", "slot to retrieve from")
		fs.StringVar(&ext, "extension", "", "extension to retrieve from")
		fs.StringVar(&random, "random", "", "random number to retrieve from")
		fs.StringVar(&to, "to", "", "account (extension) or sip: URI to ring")
	case "watch":
		fs.BoolVar(&asJSON, "json", false, "print events as JSON, one a line")
		fs.BoolVar(&all, "all", false, "also print every leg event (call.started, call.answered, ...)")
	default:
		return c.usageError(fmt.Errorf("unknown command %q", cmd))
	}
	if err := fs.Parse(rest); err != nil {
		return c.usageError(err)
	}
	if fs.NArg() > 0 {
		return c.usageError(fmt.Errorf("%s: unexpected argument %q", cmd, fs.Arg(0)))
	}
	if o.customer == "" {
		return c.usageError(errors.New("--customer (or PARKCTL_CUSTOMER) is required"))
	}
	switch {
	case cmd == "calls" && account == "":
		return c.usageError(errors.New("calls: --account is required"))
	case cmd == "park" && account == "":
		return c.usageError(errors.New("park: --account is required"))
	case cmd == "park" && count(slot != "", ext != "", anyRandom) != 1:
		return c.usageError(errors.New("park: give one of --slot, --extension or --random"))
	case cmd == "retrieve" && count(slot != "", ext != "", random != "") != 1:
		return c.usageError(errors.New("retrieve: give one of --slot, --extension or --random"))
	case cmd == "retrieve" && to == "":
		return c.usageError(errors.New("retrieve: --to is required"))
	}

	nc, err := nats.Connect(o.nats, nats.Name("parkctl"), nats.UserInfo(o.customer, o.token),
		nats.CustomInboxPrefix(api.InboxPrefix(o.customer)), nats.Timeout(o.timeout))
	if errors.Is(err, nats.ErrAuthorization) {
		// The same answer as the API's own token check gives.
		fmt.Fprintf(stderr, "parkctl: %s refused customer %q with this token (forbidden)\n", o.nats, o.customer)
		return exitError
	}
	if err != nil {
		fmt.Fprintf(stderr, "parkctl: connect to %s: %v\n", o.nats, err)
		return exitError
	}
	defer nc.Close()
	cl := &api.Client{NC: nc, Customer: o.customer, Token: o.token}
	if cmd == "watch" {
		return c.watch(ctx, nc, o.customer, asJSON, all)
	}
	rctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	switch cmd {
	case "slots":
		r, err := cl.Slots(rctx)
		if err != nil {
			return c.fail(err)
		}
		c.printSlots(r)
	case "parked":
		r, err := cl.Parked(rctx)
		if err != nil {
			return c.fail(err)
		}
		c.printParked(r)
	case "calls":
		r, err := cl.Calls(rctx, account)
		if err != nil {
			return c.fail(err)
		}
		c.printCalls(r)
	case "park":
		r, err := cl.Park(rctx, api.ParkRequest{Account: account, CallID: callID, Slot: slot, Extension: ext, Random: anyRandom})
		if err != nil {
			return c.fail(err)
		}
		p := r.Parked
		fmt.Fprintf(stdout, "parked %s on %s %s: retrieve with %s\n", p.Caller, p.Kind, p.Number, p.Code)
	case "retrieve":
		r, err := cl.Retrieve(rctx, api.RetrieveRequest{Slot: slot, Extension: ext, Random: random, To: to})
		if err != nil {
			return c.fail(err)
		}
		fmt.Fprintf(stdout, "ringing %s with %s from %s %s (call %s)\n", to, r.Parked.Caller, r.Parked.Kind, r.Parked.Number, r.CallID)
	}
	return exitOK
}

func (c *cli) flagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

func (c *cli) usageError(err error) int {
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(c.stdout, usage)
		return exitOK
	}
	fmt.Fprintf(c.stderr, "parkctl: %v\nRun 'parkctl --help' for usage.\n", err)
	return exitUsage
}

func (c *cli) fail(err error) int {
	var ae *api.Error
	if errors.As(err, &ae) {
		fmt.Fprintf(c.stderr, "parkctl: %s (%s)\n", ae.Message, ae.Code)
	} else {
		fmt.Fprintf(c.stderr, "parkctl: %v\n", err)
	}
	return exitError
}

func count(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func (c *cli) printSlots(r *api.SlotsReply) {
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "SLOT\tLABEL\tSTATE\tCALLER\tCODE\tPARKED\tRETURNS")
	for _, s := range r.Slots {
		if s.Parked == nil {
			fmt.Fprintf(w, "%s\t%s\tfree\t\t\t\t\n", s.Slot, s.Label)
			continue
		}
		p := s.Parked
		fmt.Fprintf(w, "%s\t%s\tbusy\t%s\t%s\t%s\t%s\n", s.Slot, s.Label, p.Caller, p.Code, age(p.Age), due(p.Due))
	}
	w.Flush()
}

func (c *cli) printParked(r *api.ParkedReply) {
	if len(r.Parked) == 0 {
		fmt.Fprintln(c.stdout, "no parked calls")
		return
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "KIND\tNUMBER\tCODE\tCALLER\tPARKER\tPARKED\tRETURNS")
	for _, p := range r.Parked {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Kind, p.Number, p.Code, p.Caller, p.Parker, age(p.Age), due(p.Due))
	}
	w.Flush()
}

func (c *cli) printCalls(r *api.CallsReply) {
	if len(r.Calls) == 0 {
		fmt.Fprintf(c.stdout, "account %s has no calls\n", r.Account)
		return
	}
	w := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "CALL\tSTATE\tDIRECTION\tPARTY\tSINCE")
	for _, k := range r.Calls {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", k.CallID, k.State, k.Direction, k.Party, k.Since.Local().Format(time.TimeOnly))
	}
	w.Flush()
}

func age(s float64) string {
	return (time.Duration(s * float64(time.Second))).Round(time.Second).String()
}

func due(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return "in " + time.Until(*t).Round(time.Second).String()
}

// watch prints the customer's live events until ctx ends.
func (c *cli) watch(ctx context.Context, nc *nats.Conn, customer string, asJSON, all bool) int {
	msgs := make(chan *nats.Msg, 256)
	sub, err := nc.ChanSubscribe(events.CustomerEvents(customer), msgs)
	if err != nil {
		return c.fail(err)
	}
	defer sub.Unsubscribe()
	// A refused subscription (permissions) shows up as the connection's
	// last error once the server has processed it.
	if err := nc.Flush(); err != nil {
		return c.fail(err)
	}
	if err := nc.LastError(); err != nil {
		return c.fail(err)
	}
	fmt.Fprintf(c.stderr, "watching %s (Ctrl-C to stop)\n", events.CustomerEvents(customer))
	for {
		select {
		case <-ctx.Done():
			return exitOK
		case m := <-msgs:
			e, err := events.DecodeEvent(m.Data)
			if err != nil {
				continue
			}
			if !all && e.Source != events.SourceApp {
				continue
			}
			if asJSON {
				fmt.Fprintf(c.stdout, "%s\n", m.Data)
				continue
			}
			fmt.Fprintln(c.stdout, describe(e))
		}
	}
}

// describe is one human-readable line for e.
func describe(e *events.Event) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s  %-15s", e.Time.Local().Format(time.TimeOnly), e.Type)
	if p := e.Park; p != nil {
		fmt.Fprintf(&b, "  %s %s  caller %s", p.Kind, p.Number, p.Parked)
		if p.Code != "" {
			fmt.Fprintf(&b, "  code %s", p.Code)
		}
		if p.Parker != "" {
			fmt.Fprintf(&b, "  parked by %s", p.Parker)
		}
		if p.By != "" {
			fmt.Fprintf(&b, "  retrieved by %s", p.By)
		}
	}
	if e.Slot != "" && (e.Park == nil || e.Park.Kind != "slot") {
		fmt.Fprintf(&b, "  slot %s", e.Slot)
	}
	if e.Account != "" {
		fmt.Fprintf(&b, "  account %s", e.Account)
	}
	fmt.Fprintf(&b, "  call %s", e.Call)
	return b.String()
}
