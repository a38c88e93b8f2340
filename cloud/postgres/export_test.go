package postgres

// TakeSearchTurn takes one of the search turns, as a running search would,
// and returns the function that gives it back.
func (db *DB) TakeSearchTurn() (release func()) {
	db.searches <- struct{}{}
	return func() { <-db.searches }
}
