package fastfilter

import "time"

// SetReceivedAt makes d.ReceivedAt return t, as a datagram from the netstack
// lane with netstack's time stamp does.
func SetReceivedAt(d *Datagram, t time.Time) { d.at = t }
