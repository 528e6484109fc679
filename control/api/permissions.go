package api

import (
	"github.com/nats-io/nats-server/v2/server"

	"github.com/callpark/callpark/dialplans"
	"github.com/callpark/callpark/events"
)

// Permissions are the NATS subject permissions of a customer's apps: they
// may send API requests for their own customer only, receive replies on their own inbox prefix (InboxPrefix), and
// subscribe to their own customer's events, live or replayed through a
// JetStream consumer named after the customer and filtered on its events.
// Nothing of another customer is reachable, not even by subscribing.
//
// JetStream consumer names cannot be matched by prefix in NATS
// permissions, so each customer has one durable consumer name: the
// customer's own name.
func Permissions(customer string) *server.Permissions {
	own := events.CustomerEvents(customer)
	js := "$JS.API.CONSUMER."
	return &server.Permissions{
		Publish: &server.SubjectPermission{Allow: []string{
			Prefix + "." + customer + ".>",
			js + "CREATE." + events.StreamName + "." + customer + "." + own,
			js + "INFO." + events.StreamName + "." + customer,
			js + "MSG.NEXT." + events.StreamName + "." + customer,
			"$JS.ACK." + events.StreamName + "." + customer + ".>",
		}},
		Subscribe: &server.SubjectPermission{Allow: []string{
			InboxPrefix(customer) + ".>",
			own,
		}},
	}
}

// InboxPrefix is the reply-subject prefix a customer's apps must use
// (nats.CustomInboxPrefix): with the plain _INBOX.> one customer could read
// the replies meant for another.
func InboxPrefix(customer string) string { return "_INBOX_" + customer }

// Users returns one NATS user per customer of set that has an API token
// (user name: the customer, password: the token, permissions: Permissions)
// and, first, the callpark processes' own unrestricted user.
func Users(set *dialplans.Set, serviceUser, servicePassword string) []*server.User {
	users := []*server.User{{Username: serviceUser, Password: servicePassword}}
	for _, c := range set.Customers() {
		if c.API.Token == "" {
			continue
		}
		users = append(users, &server.User{Username: c.Name, Password: c.API.Token, Permissions: Permissions(c.Name)})
	}
	return users
}
