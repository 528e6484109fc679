// Command parkctl drives callpark's call-control API from a shell: list
// slots and parked calls, park and retrieve calls, watch events.
//
//	parkctl [flags] slots
//	parkctl [flags] parked
//	parkctl [flags] calls --account 200
//	parkctl [flags] park --account 200 (--slot 1 | --extension 333 | --random) [--call ID]
//	parkctl [flags] retrieve (--slot 1 | --extension 333 | --random 7250) --to 201|sip:...
//	parkctl [flags] watch [--json] [--all]
//
// Flags (also after the command): --nats URL, --customer NAME, --token
// TOKEN, --timeout DURATION; the environment variables PARKCTL_NATS,
// PARKCTL_CUSTOMER and PARKCTL_TOKEN set their defaults. The token is sent
// with every API request and, as the NATS password of the user named after
// the customer, when connecting (see examples/nats-server.conf).
//
// Exit status: 0 success, 1 the API or NATS refused or failed, 2 usage.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
