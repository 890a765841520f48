//go:build linux

// Package privdrop gives up root for a named user, as tcpdump -Z does:
// what needed root (sockets, the first file) is opened first, then every
// thread of the process takes the user's IDs and keeps no capability.
package privdrop

import (
	"fmt"
	"os/user"
	"strconv"
	"syscall"
)

// User names the account to run as, with its IDs.
type User struct {
	Name     string
	UID, GID int
}

// Lookup finds name in the user database.
func Lookup(name string) (User, error) {
	u, err := user.Lookup(name)
	if err != nil {
		return User{}, fmt.Errorf("-Z %s: %w", name, err)
	}
	uid, err := strconv.Atoi(u.Uid)
	if err != nil {
		return User{}, fmt.Errorf("-Z %s: uid %q", name, u.Uid)
	}
	gid, err := strconv.Atoi(u.Gid)
	if err != nil {
		return User{}, fmt.Errorf("-Z %s: gid %q", name, u.Gid)
	}
	return User{Name: name, UID: uid, GID: gid}, nil
}

// Drop switches every thread to the user's IDs, with only its primary
// group. Leaving root this way clears all capabilities.
func (u User) Drop() error {
	if err := syscall.Setgroups([]int{u.GID}); err != nil {
		return fmt.Errorf("-Z %s: setgroups: %w", u.Name, err)
	}
	if err := syscall.Setgid(u.GID); err != nil {
		return fmt.Errorf("-Z %s: setgid: %w", u.Name, err)
	}
	if err := syscall.Setuid(u.UID); err != nil {
		return fmt.Errorf("-Z %s: setuid: %w", u.Name, err)
	}
	return nil
}
