package persist_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/d8da9184/opstate/persist"
)

// BenchmarkApply measures what one upserted row costs SQLite, by the size
// of the transaction that holds it and by where its key lies: ns/op is per
// row. Rows of scattered keys each land on their own B-tree page, which the
// commit checksums and writes to the WAL; rows of adjacent keys share pages.
// The difference between the two is the part of a write that group commit
// cannot share, and so bounds what it can gain over one transaction per
// write.
func BenchmarkApply(b *testing.B) {
	const keys = 10_000
	key := func(i int) string { return fmt.Sprintf("key-%05d", i) }
	for _, sync := range []persist.Sync{persist.SyncNormal, persist.SyncFull} {
		for _, layout := range []string{"scattered", "adjacent"} {
			for _, rows := range []int{1, 8, 32} {
				name := fmt.Sprintf("%s/%s/%d-rows", map[persist.Sync]string{persist.SyncNormal: "NORMAL", persist.SyncFull: "FULL"}[sync], layout, rows)
				b.Run(name, func(b *testing.B) {
					db, err := persist.Open(filepath.Join(b.TempDir(), "state.db"), persist.Options{Sync: sync})
					if err != nil {
						b.Fatal(err)
					}
					defer db.Close()
					ctx := context.Background()
					var fill []*persist.Write
					for i := range keys {
						fill = append(fill, &persist.Write{Kind: persist.Put, Namespace: "flags", Key: key(i), Value: fmt.Sprintf("value-%026d", i)})
						if len(fill) == 256 || i == keys-1 {
							if err := db.Apply(ctx, t0, fill); err != nil {
								b.Fatal(err)
							}
							fill = fill[:0]
						}
					}
					// The keys and values of the timed writes, built before
					// timing: key j of the sequence is scattered (a stride
					// coprime with keys) or follows j-1.
					seq := make([]*persist.Write, 4*keys)
					for j := range seq {
						k := j % keys
						if layout == "scattered" {
							k = j * 7919 % keys
						}
						seq[j] = &persist.Write{Kind: persist.Put, Namespace: "flags", Key: key(k), Value: fmt.Sprintf("other-%026d", j)}
					}
					batch := make([]*persist.Write, rows)
					b.ResetTimer()
					for j := 0; j < b.N; j += rows {
						for r := range batch {
							batch[r] = seq[(j+r)%len(seq)]
						}
						if err := db.Apply(ctx, t0, batch); err != nil {
							b.Fatal(err)
						}
					}
				})
			}
		}
	}
}
