package sip

import (
	"hash/maphash"
	"sync"
)

// callpark patch 9: the transaction stores are sharded by key.
//
// Every message looks its transaction up here, every new transaction is
// put here and every ended one dropped. Upstream kept one map under one
// lock per store; past a machine's capacity (2,000 park+retrieve cycles/s
// offered on 2 cores) a goroutine holding it was preempted among
// thousands of runnable ones and the rest queued behind it: 1,600
// goroutines waited on the two locks at once, each holding its stack.
// With the keys spread over txShards maps, a preempted holder stalls
// only the messages of its own shard.

// txShards is the number of maps a store spreads its keys over.
const txShards = 64

type transactionStore[T Transaction] struct {
	seed   maphash.Seed
	shards [txShards]txShard[T]
}

// txShard is one map of a store with its lock.
type txShard[T Transaction] struct {
	mu    sync.Mutex
	items map[string]T
	_     [48]byte // a cache line of its own: shards are locked from every core
}

func newTransactionStore[T Transaction]() *transactionStore[T] {
	store := &transactionStore[T]{seed: maphash.MakeSeed()}
	for i := range store.shards {
		store.shards[i].items = make(map[string]T)
	}
	return store
}

// lock locks and returns the shard of key, for a look-up and an insert
// under one lock (the caller unlocks it).
func (store *transactionStore[T]) lock(key string) *txShard[T] {
	sh := &store.shards[maphash.String(store.seed, key)%txShards]
	sh.mu.Lock()
	return sh
}

func (store *transactionStore[T]) put(key string, tx T) {
	sh := store.lock(key)
	sh.items[key] = tx
	sh.mu.Unlock()
}

func (store *transactionStore[T]) get(key string) (T, bool) {
	sh := store.lock(key)
	tx, ok := sh.items[key]
	sh.mu.Unlock()
	return tx, ok
}

func (store *transactionStore[T]) drop(key string) bool {
	sh := store.lock(key)
	defer sh.mu.Unlock()
	_, exists := sh.items[key]
	delete(sh.items, key)
	if exists && len(sh.items) == 0 {
		// callpark patch 2: a Go map keeps the room of its largest size;
		// once empty, a burst's thousands of slots go with it.
		sh.items = make(map[string]T)
	}
	return exists
}

// each calls f for every transaction in the store, with no lock held
// (f may end the transaction, which drops it).
func (store *transactionStore[T]) each(f func(T)) {
	for i := range store.shards {
		sh := &store.shards[i]
		sh.mu.Lock()
		txs := make([]T, 0, len(sh.items))
		for _, tx := range sh.items {
			txs = append(txs, tx)
		}
		sh.mu.Unlock()
		for _, tx := range txs {
			f(tx)
		}
	}
}

func (store *transactionStore[T]) terminateAll() {
	store.each(func(tx T) { tx.Terminate() })
}
