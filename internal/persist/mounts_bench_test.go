package persist

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkCheckPlace measures what Open pays to tell a mounted database
// file or sidecar: checkPlace on a database of the machine it runs on
// (four lstats and the read of this process's list of mounts, with
// mounts/op the length of the list), and the scan of lists as long as
// container hosts have, where every pod adds a few mounts; and, to
// compare, the whole Open and Close of a database.
func BenchmarkCheckPlace(b *testing.B) {
	b.Run("open-and-close", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "state.db")
		b.ReportAllocs()
		for b.Loop() {
			db, err := Open(path, Options{})
			if err != nil {
				b.Fatal(err)
			}
			if err := db.Close(); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("this-machine", func(b *testing.B) {
		path := filepath.Join(b.TempDir(), "state.db")
		if err := os.WriteFile(path, nil, 0o600); err != nil {
			b.Fatal(err)
		}
		mounts := 0
		if info, err := os.ReadFile(mountInfoPath); err == nil {
			mounts = strings.Count(string(info), "\n")
		}
		b.ReportAllocs()
		b.ResetTimer()
		for b.Loop() {
			if err := checkPlace(path); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(mounts), "mounts/op")
	})
	for _, n := range []int{30, 1000, 10000} {
		b.Run(fmt.Sprintf("scan-%d-mounts", n), func(b *testing.B) {
			info := []byte(fakeMountInfo(n))
			path := "/var/lib/app/state.db"
			paths := []string{path, path + "-wal", path + "-shm", path + "-journal"}
			b.SetBytes(int64(len(info)))
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if m := mountPointIn(info, paths...); m != "" {
					b.Fatalf("mountPointIn found %q", m)
				}
			}
			b.ReportMetric(float64(n), "mounts/op")
		})
	}
}

// fakeMountInfo returns a mountinfo of n mounts like a Kubernetes node's:
// the volumes of pods, some with escaped characters.
func fakeMountInfo(n int) string {
	var b strings.Builder
	b.WriteString("22 1 254:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw\n")
	for i := range n - 1 {
		if i%100 == 0 {
			fmt.Fprintf(&b, "%d 22 254:1 /srv/data\\040%d /mnt/data\\040%d rw,relatime - ext4 /dev/vda1 rw\n", 100+i, i, i)
			continue
		}
		fmt.Fprintf(&b, "%d 22 0:%d / /var/lib/kubelet/pods/%08x-1d2e-4f5a-8b9c-%012x/volumes/kubernetes.io~projected/kube-api-access-%05d rw,relatime shared:%d - tmpfs tmpfs rw,size=65536k,inode64\n",
			100+i, 60+i, i, i, i, 100+i)
	}
	return b.String()
}
