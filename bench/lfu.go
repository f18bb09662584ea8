package main

import "container/heap"

// lfuHits returns the hits of an exact LFU cache on lookups of key numbers
// below keys, with room for capacity entries: it counts every lookup of
// every key since the trace began, cached or not, and on a miss with the
// cache full it replaces the cached key counted least (of those, the one
// whose count last changed earliest) with the key looked up, only if that
// one is now counted more. It is what a frequency sketch approximates,
// without the sketch's collisions and without forgetting: on traces whose
// popularity does not change, a bound on what admission by frequency can
// get. The cached keys sit in a heap by count; an entry left behind by a
// later lookup of its key is skipped when it comes up.
func lfuHits(lookups []int32, keys, capacity int) int {
	if capacity <= 0 {
		return 0
	}
	count := make([]int32, keys)
	at := make([]int32, keys) // where count[k] last changed
	cached := make([]bool, keys)
	h := &countHeap{}
	size, hits := 0, 0
	for i, k := range lookups {
		count[k]++
		at[k] = int32(i)
		switch {
		case cached[k]:
			hits++
		case size < capacity:
			size++
			cached[k] = true
		default:
			for top := h.top(); !cached[top.key] || count[top.key] != top.count || at[top.key] != top.at; top = h.top() {
				heap.Pop(h)
			}
			if h.top().count >= count[k] {
				continue // not counted more than the least: not admitted
			}
			cached[heap.Pop(h).(counted).key] = false
			cached[k] = true
		}
		heap.Push(h, counted{count: count[k], at: at[k], key: k})
	}
	return hits
}

// counted is a cached key, its count and where the count last changed.
type counted struct{ count, at, key int32 }

// countHeap is a min-heap of counted keys by count, then by where the count
// last changed.
type countHeap []counted

func (h countHeap) Len() int { return len(h) }
func (h countHeap) Less(i, j int) bool {
	if h[i].count != h[j].count {
		return h[i].count < h[j].count
	}
	return h[i].at < h[j].at
}
func (h countHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *countHeap) Push(x any)   { *h = append(*h, x.(counted)) }
func (h countHeap) top() counted  { return h[0] }
func (h *countHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
