package decap

// MaxFlowLabel is the largest IPv6 flow label: the envelope's flow label
// carries a port's tag (docs/ENVELOPE.md), so tags are 1 to MaxFlowLabel.
const MaxFlowLabel = 0xFFFFF
