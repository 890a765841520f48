// Package flowprog models the program that makes a NIC sample received
// frames and send encapsulated copies to a sink.
package flowprog

import "github.com/dpcap/dpcap/decap"

// TemplateLen is the size of the encapsulation the NIC prepends.
const TemplateLen = decap.EnvelopeLen

// Template is the envelope the NIC's RAW_ENCAP action prepends to each
// sampled frame; its layout and builder are decap's, shared with every
// other builder of the envelope.
type Template = decap.Envelope

// Encap appends the envelope of frame to dst (decap.Encap).
func Encap(dst []byte, tmpl *[TemplateLen]byte, frame []byte, fixLengths bool) []byte {
	return decap.Encap(dst, tmpl, frame, fixLengths)
}
