//go:build race

package live

// raceOn: the race detector drops sync.Pool's items at random.
const raceOn = true
