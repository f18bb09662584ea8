package persist_test

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/d8da9184/opstate/internal/persist"
)

// BenchmarkApply measures what one upserted row costs SQLite, by the size
// of the transaction that holds it and by where its key lies: ns/op is per
// row. Rows of scattered keys each land on their own B-tree page, which the
// commit checksums and writes to the WAL; rows of adjacent keys share pages.
// The difference between the two is the part of a write that group commit
// cannot share, and so bounds what it can gain over one transaction per
// write.
//
// The last level compares the schema as it is, where the change log's
// triggers log every row (log), with the same file without them (nolog),
// which is what a write cost before the change log: the log's price, in
// one run.
func BenchmarkApply(b *testing.B) {
	const keys = 10_000
	key := func(i int) string { return fmt.Sprintf("key-%05d", i) }
	for _, sync := range []persist.Sync{persist.SyncNormal, persist.SyncFull} {
		for _, layout := range []string{"scattered", "adjacent"} {
			for _, rows := range []int{1, 8, 32} {
				for _, logged := range []bool{true, false} {
					name := fmt.Sprintf("%s/%s/%d-rows/%s", map[persist.Sync]string{persist.SyncNormal: "NORMAL", persist.SyncFull: "FULL"}[sync], layout, rows, map[bool]string{true: "log", false: "nolog"}[logged])
					b.Run(name, func(b *testing.B) {
						path := filepath.Join(b.TempDir(), "state.db")
						db, err := persist.Open(path, persist.Options{Sync: sync})
						if err != nil {
							b.Fatal(err)
						}
						defer db.Close()
						if !logged {
							dropChangeLog(b, path)
						}
						ctx := context.Background()
						var fill []persist.Write
						for i := range keys {
							fill = append(fill, persist.Write{Kind: persist.Put, Namespace: "flags", Key: key(i), Value: fmt.Sprintf("value-%026d", i)})
							if len(fill) == 256 || i == keys-1 {
								if _, err := db.Apply(ctx, t0, fill); err != nil {
									b.Fatal(err)
								}
								fill = fill[:0]
							}
						}
						// The keys and values of the timed writes, built before
						// timing: key j of the sequence is scattered (a stride
						// coprime with keys) or follows j-1.
						seq := make([]persist.Write, 4*keys)
						for j := range seq {
							k := j % keys
							if layout == "scattered" {
								k = j * 7919 % keys
							}
							seq[j] = persist.Write{Kind: persist.Put, Namespace: "flags", Key: key(k), Value: fmt.Sprintf("other-%026d", j)}
						}
						batch := make([]persist.Write, rows)
						b.ResetTimer()
						for j := 0; j < b.N; j += rows {
							for r := range batch {
								batch[r] = seq[(j+r)%len(seq)]
							}
							if _, err := db.Apply(ctx, t0, batch); err != nil {
								b.Fatal(err)
							}
						}
					})
				}
			}
		}
	}
}

// dropChangeLog drops the change log's triggers from the file at path,
// through a connection of its own: the writes that follow cost what they
// did before the log.
func dropChangeLog(b *testing.B, path string) {
	b.Helper()
	raw, err := sql.Open("sqlite", path)
	if err != nil {
		b.Fatal(err)
	}
	defer raw.Close()
	for _, t := range []string{"insert", "update", "rename", "delete"} {
		if _, err := raw.Exec(`DROP TRIGGER operational_state_changes_` + t); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkChanges measures one call of DB.Changes: when nobody else has
// committed, what a Store pays every SyncInterval when idle (idle), or
// after writes of its own (own: one own write before each call); and
// after another connection's commit of one row (foreign), which it reads
// from the log, with the schema cookie that tells a restored backup.
func BenchmarkChanges(b *testing.B) {
	for _, mode := range []string{"idle", "own", "foreign"} {
		b.Run(mode, func(b *testing.B) {
			path := filepath.Join(b.TempDir(), "state.db")
			db, err := persist.Open(path, persist.Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			other, err := sql.Open("sqlite", path)
			if err != nil {
				b.Fatal(err)
			}
			defer other.Close()
			ctx := context.Background()
			w := persist.Write{Kind: persist.Put, Namespace: "flags", Key: "k", Value: "v"}
			for i := 0; b.Loop(); i++ {
				b.StopTimer()
				switch mode {
				case "own":
					_, err = db.Apply(ctx, t0, []persist.Write{w})
				case "foreign":
					_, err = other.Exec(`INSERT OR REPLACE INTO operational_state VALUES ('flags', ?, 'v', '2026-01-01T00:00:00.000Z', NULL)`, fmt.Sprint(i%100))
				}
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				if _, err := db.Changes(ctx); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
