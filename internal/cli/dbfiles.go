package cli

// dbSuffixes name the files of an SQLite database: the database file, at
// the path itself, and those SQLite keeps beside it, at the path and
// each suffix.
var dbSuffixes = []string{"", "-wal", "-shm", "-journal"}

// dbFiles returns the files of the database db that the command's Store
// may hold open, for serve.LoadTokens to avoid: the database file, its
// -wal, -shm and -journal. A PostgreSQL URL has none.
func dbFiles(db string) []string {
	if IsPostgresURL(db) {
		return nil
	}
	files := make([]string, len(dbSuffixes))
	for i, suffix := range dbSuffixes {
		files[i] = db + suffix
	}
	return files
}
