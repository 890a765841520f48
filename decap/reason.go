package decap

// Reason says why a packet could not be decapsulated. The zero Reason means
// it could. Skipped reasons mean the packet is not an envelope at all
// (other traffic in a capture); the rest mean a broken envelope.
type Reason uint8

// The reasons, in two classes (listed in reasons, in any order). Their
// String values are metric labels.
const (
	OK Reason = iota

	// Skipped: not an envelope.
	UnsupportedLinkType
	NotIP                  // the outer frame carries neither IPv4 nor IPv6
	NotUDPOrGRE            // the outer IP packet carries another protocol
	UnknownPort            // UDP to a port mapped to no envelope kind
	GREUnsupportedProtocol // GRE carrying something other than ERSPAN or Ethernet
	TZSPNotAPacket         // TZSP keepalives and the like

	// Malformed: an envelope, broken.
	ShortFrame               // the inner frame is shorter than an Ethernet header, or a bare packet empty
	TruncatedHeader          // the capture ends inside the envelope's headers
	BadIPHeader              // wrong IP version or header length
	Fragment                 // a fragment of an envelope that was not reassembled (sink reassembles outer fragments)
	BadVXLANHeader           // the VNI-valid flag is not set, or an unknown VXLAN-GPE version
	BadGENEVEHeader          // unknown GENEVE version
	GENEVEUnsupportedProto   // GENEVE protocol type below 0x0600: not an EtherType
	BadGREHeader             // GRE version or routing bits set
	BadERSPANHeader          // ERSPAN version does not match its GRE protocol
	ERSPANUnsupportedFrame   // ERSPAN III frame type other than Ethernet or IP
	BadTZSPHeader            // unknown TZSP version, or tags overrunning the packet
	TZSPUnsupportedEncap     // TZSP carrying something other than Ethernet
	VXLANGPEOnVXLANPort      // a VXLAN-GPE header of IP, NSH or MPLS on a port mapped to vxlan
	VXLANGPEUnsupportedProto // VXLAN-GPE carrying neither Ethernet nor IP (NSH, MPLS, ...)
	TruncatedInner           // the capture ends before the inner frame's Ethernet header does, or before a bare packet starts
	NumReasons               // the number of reasons, for arrays indexed by Reason
)

// reasons names each reason and says which class it is in; a reason
// missing here fails TestEveryReasonDescribed.
var reasons = [NumReasons]struct {
	name      string
	malformed bool
}{
	OK:                       {"ok", false},
	UnsupportedLinkType:      {"unsupported_link_type", false},
	NotIP:                    {"not_ip", false},
	NotUDPOrGRE:              {"not_udp_or_gre", false},
	UnknownPort:              {"unknown_port", false},
	GREUnsupportedProtocol:   {"gre_unsupported_protocol", false},
	TZSPNotAPacket:           {"tzsp_not_a_packet", false},
	ShortFrame:               {"short_frame", true},
	TruncatedHeader:          {"truncated_header", true},
	BadIPHeader:              {"bad_ip_header", true},
	Fragment:                 {"fragment", true},
	BadVXLANHeader:           {"bad_vxlan_header", true},
	BadGENEVEHeader:          {"bad_geneve_header", true},
	GENEVEUnsupportedProto:   {"geneve_unsupported_protocol", true},
	BadGREHeader:             {"bad_gre_header", true},
	BadERSPANHeader:          {"bad_erspan_header", true},
	ERSPANUnsupportedFrame:   {"erspan_unsupported_frame_type", true},
	BadTZSPHeader:            {"bad_tzsp_header", true},
	TZSPUnsupportedEncap:     {"tzsp_unsupported_encapsulation", true},
	TruncatedInner:           {"truncated_inner_header", true},
	VXLANGPEOnVXLANPort:      {"vxlan_gpe_on_vxlan_port", true},
	VXLANGPEUnsupportedProto: {"vxlan_gpe_unsupported_protocol", true},
}

// String returns the reason's metric label.
func (r Reason) String() string {
	if r < NumReasons {
		return reasons[r].name
	}
	return "unknown"
}

// Malformed reports whether r describes a broken envelope rather than a
// packet that is not an envelope.
func (r Reason) Malformed() bool { return r < NumReasons && reasons[r].malformed }
