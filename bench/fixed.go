package main

import "slices"

// fixedHits returns the hits of the best fixed set of capacity keys on
// lookups of key numbers below keys, chosen knowing the whole trace: the
// capacity keys looked up most often, each cached at its first lookup and
// never evicted, so that each hits on every lookup but its first. Where
// lookups are independent draws (the Zipf traces), keeping the keys most
// likely to come next is the best a policy that sees only the past can
// do, so this is about what any such policy can get there, knowing the
// probabilities in advance; a policy that adapts to the order of the
// lookups, as Belady's does, can do better.
func fixedHits(lookups []int32, keys, capacity int) int {
	count := make([]int, keys)
	for _, k := range lookups {
		count[k]++
	}
	slices.SortFunc(count, func(a, b int) int { return b - a })
	hits := 0
	for _, n := range count[:min(capacity, keys)] {
		hits += max(n-1, 0)
	}
	return hits
}
