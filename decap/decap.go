// Package decap takes the NIC's encapsulated copies apart and says precisely
// why a packet is not a usable envelope.
package decap

// Reason says why a packet could not be decapsulated. The zero Reason means
// it could.
type Reason uint8

// The reasons a packet is malformed. Their String values are metric labels.
const (
	OK Reason = iota
	// ShortFrame: the inner frame is shorter than an Ethernet header.
	ShortFrame
	// NumReasons counts the reasons, for arrays indexed by Reason.
	NumReasons
)

var reasonNames = [NumReasons]string{
	OK:         "ok",
	ShortFrame: "short_frame",
}

// String returns the reason's metric label.
func (r Reason) String() string {
	if r < NumReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// EtherHeaderLen is the length of an Ethernet header without tags.
const EtherHeaderLen = 14

// UDPPayload checks a datagram received on the envelope port, whose payload
// is one inner Ethernet frame of length bytes (data may be cut by snaplen).
func UDPPayload(data []byte, length int) ([]byte, Reason) {
	if length < EtherHeaderLen {
		return nil, ShortFrame
	}
	return data, OK
}
