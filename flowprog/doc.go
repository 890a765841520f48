// Package flowprog models the program that makes a NIC sample received
// frames and send encapsulated copies to a sink.
package flowprog
