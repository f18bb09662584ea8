package main

import "container/heap"

// optimalHits returns the hits of Belady's clairvoyant policy on lookups of
// key numbers below keys, with room for capacity entries: on a miss with
// the cache full, of the cached keys and the one looked up it leaves out
// the one whose next lookup is farthest (which may be the one looked up:
// a cache may decline to admit an entry, as W-TinyLFU does). No policy that
// sees only the past does better. O(n log n): the cached keys sit in a heap
// by next lookup, whose entries are left behind (and skipped when they come
// up) rather than updated.
func optimalHits(lookups []int32, keys, capacity int) int {
	n := len(lookups)
	if capacity <= 0 {
		return 0
	}
	// next[i] is the position of the next lookup of lookups[i], n if none.
	next := make([]int32, n)
	last := make([]int32, keys)
	for k := range last {
		last[k] = int32(n)
	}
	for i := n - 1; i >= 0; i-- {
		k := lookups[i]
		next[i] = last[k]
		last[k] = int32(i)
	}
	// cached[k] is the next lookup of k when k is cached, -1 when not; a
	// heap entry is current when it agrees.
	cached := last // reused: every element is overwritten
	for k := range cached {
		cached[k] = -1
	}
	h := &nextHeap{}
	size, hits := 0, 0
	for i, k := range lookups {
		nk := next[i]
		switch {
		case cached[k] >= 0:
			hits++
		case size < capacity:
			size++
		default:
			for cached[h.top().key] != h.top().next {
				heap.Pop(h) // left behind by a later lookup of its key
			}
			far := h.top()
			if far.next <= nk {
				continue // k is the one looked up farthest ahead: not admitted
			}
			heap.Pop(h)
			cached[far.key] = -1
		}
		cached[k] = nk
		heap.Push(h, use{next: nk, key: k})
	}
	return hits
}

// use is a cached key and its next lookup.
type use struct{ next, key int32 }

// nextHeap is a max-heap of uses by next lookup.
type nextHeap []use

func (h nextHeap) Len() int           { return len(h) }
func (h nextHeap) Less(i, j int) bool { return h[i].next > h[j].next }
func (h nextHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *nextHeap) Push(x any)        { *h = append(*h, x.(use)) }
func (h *nextHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
func (h nextHeap) top() use { return h[0] }
