package state

import "github.com/hashicorp/go-memdb"

// Table names.
const (
	TableChannels      = "channels"
	TableParked        = "parked"
	TableRegistrations = "registrations"
)

// Index names. IndexID is memdb's mandatory primary index.
const (
	IndexID              = "id"
	IndexCustomerAccount = "customer_account"
	IndexChannel         = "channel"
	IndexCustomer        = "customer"
)

// schema returns the database schema of the control plane.
func schema() *memdb.DBSchema {
	return &memdb.DBSchema{
		Tables: map[string]*memdb.TableSchema{
			TableChannels:      channelsTable(),
			TableParked:        parkedTable(),
			TableRegistrations: registrationsTable(),
			TableDials:         dialsTable(),
		},
	}
}

// channelsTable holds one row per SIP leg, keyed by the core's call id.
func channelsTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableChannels,
		Indexes: map[string]*memdb.IndexSchema{
			IndexID: {
				Name:    IndexID,
				Unique:  true,
				Indexer: &memdb.StringFieldIndex{Field: "ID"},
			},
			// The legs of one phone: the caller's extension on inbound legs,
			// the dialed account on outbound ones. Trunk legs have none.
			IndexCustomerAccount: {
				Name:         IndexCustomerAccount,
				AllowMissing: true,
				Indexer: &memdb.CompoundIndex{
					Indexes: []memdb.Indexer{
						&memdb.StringFieldIndex{Field: "Customer"},
						&memdb.StringFieldIndex{Field: "Account"},
					},
				},
			},
		},
	}
}

// parkedTable holds one row per parked call, keyed by customer and park key
// ("333", "*7250", "slot:1").
func parkedTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableParked,
		Indexes: map[string]*memdb.IndexSchema{
			IndexID: {
				Name:   IndexID,
				Unique: true,
				Indexer: &memdb.CompoundIndex{
					Indexes: []memdb.Indexer{
						&memdb.StringFieldIndex{Field: "Customer"},
						&memdb.StringFieldIndex{Field: "Key"},
					},
				},
			},
			// A leg is parked at most once.
			IndexChannel: {
				Name:    IndexChannel,
				Unique:  true,
				Indexer: &memdb.StringFieldIndex{Field: "Channel"},
			},
			IndexCustomer: {
				Name:    IndexCustomer,
				Indexer: &memdb.StringFieldIndex{Field: "Customer"},
			},
		},
	}
}

// registrationsTable mirrors registration.updated events: the contacts of
// each account registered through each node.
func registrationsTable() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: TableRegistrations,
		Indexes: map[string]*memdb.IndexSchema{
			IndexID: {
				Name:   IndexID,
				Unique: true,
				Indexer: &memdb.CompoundIndex{
					Indexes: []memdb.Indexer{
						&memdb.StringFieldIndex{Field: "Customer"},
						&memdb.StringFieldIndex{Field: "Account"},
						&memdb.StringFieldIndex{Field: "Node"},
					},
				},
			},
			IndexCustomer: {
				Name:    IndexCustomer,
				Indexer: &memdb.StringFieldIndex{Field: "Customer"},
			},
		},
	}
}
