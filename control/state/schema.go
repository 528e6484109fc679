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
// Its second index finds the legs of one phone: the caller's extension on
// inbound legs, the dialed account on outbound ones (trunk legs have none).
func channelsTable() *memdb.TableSchema {
	return table(TableChannels,
		unique(IndexID, "ID"),
		optional(index(IndexCustomerAccount, "Customer", "Account")))
}

// parkedTable holds one row per parked call, keyed by customer and park key
// ("333", "*7250", "slot:1"); a leg is parked at most once.
func parkedTable() *memdb.TableSchema {
	return table(TableParked,
		unique(IndexID, "Customer", "Key"),
		unique(IndexChannel, "Channel"),
		index(IndexCustomer, "Customer"))
}

// registrationsTable mirrors registration.updated events: the contacts of
// each account registered through each node.
func registrationsTable() *memdb.TableSchema {
	return table(TableRegistrations,
		unique(IndexID, "Customer", "Account", "Node"),
		index(IndexCustomer, "Customer"))
}

// table is a table schema over its indexes.
func table(name string, indexes ...*memdb.IndexSchema) *memdb.TableSchema {
	t := &memdb.TableSchema{Name: name, Indexes: make(map[string]*memdb.IndexSchema, len(indexes))}
	for _, ix := range indexes {
		t.Indexes[ix.Name] = ix
	}
	return t
}

// index indexes rows by string fields, compound when more than one.
func index(name string, fields ...string) *memdb.IndexSchema {
	byField := make([]memdb.Indexer, len(fields))
	for i, f := range fields {
		byField[i] = &memdb.StringFieldIndex{Field: f}
	}
	ix := &memdb.IndexSchema{Name: name, Indexer: byField[0]}
	if len(fields) > 1 {
		ix.Indexer = &memdb.CompoundIndex{Indexes: byField}
	}
	return ix
}

// unique is an index with at most one row per value.
func unique(name string, fields ...string) *memdb.IndexSchema {
	ix := index(name, fields...)
	ix.Unique = true
	return ix
}

// optional lets rows leave the index's fields empty.
func optional(ix *memdb.IndexSchema) *memdb.IndexSchema {
	ix.AllowMissing = true
	return ix
}
