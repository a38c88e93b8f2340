package postgres

// TakeSearchTurn takes one of the search turns, as a running search would,
// and returns the function that gives it back.
func (db *DB) TakeSearchTurn() (release func()) {
	db.searches <- struct{}{}
	return func() { <-db.searches }
}

// Fail is fail, the store's translation of its errors.
var Fail = fail

// Warm is warm, the warm-up of a service pool's new connection.
var Warm = warm

// HoldSQL is the statement the store sends for a hold.
const HoldSQL = holdSQL

// HoldArgs are the arguments the store sends with HoldSQL.
var HoldArgs = holdArgs
