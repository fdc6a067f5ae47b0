// Package reuseport owns how popdns binds an address that a second popdns
// process must be able to bind too, so that a new process can take over
// from a running one without a moment in which nobody listens: the
// SO_REUSEPORT option, and the steering of a reuseport group's traffic
// from the old process's socket to the new one's.
//
// # Why steering
//
// Plain SO_REUSEPORT is not loss-free. The kernel hashes each datagram (UDP)
// or connection request (TCP) over every socket of the group, so a new
// process gets part of the traffic from the moment it binds, before it
// reads; and when the old process closes its socket, what waits in that
// socket's receive queue (UDP) or accept queue (TCP) is dropped. A
// classic BPF program attached to the group (SO_ATTACH_REUSEPORT_CBPF)
// picks the socket instead: its return value is an index into the group's
// sockets, in the order they joined, and an index past the last falls
// back to the hash. popdns binds one socket per address and transport, so
// the old process's socket is index 0 and the new one's index 1:
//
//   - Bind steers to index 0 as soon as it has bound: the oldest socket,
//     which is this process's own when it is alone, and the running
//     process's when it is taking over, so that everything new keeps going
//     to the process that answers until the new one is ready;
//   - once the new process reads and is ready, Steer(Newest) steers to
//     index 1 (dnsserver's Server.TakeOver does it): every new
//     datagram and connection goes to it, the old socket's queues only
//     empty, and the old process drains them and closes. Its socket gone,
//     the new one is index 0 of a group of one, where index 1 falls back
//     to the hash, i.e. to the only socket left.
//
// The program belongs to the group, not to a socket, so the one the last
// takeover attached is still there when the next process binds: until
// that process's Bind steers back to index 0, a few microseconds later,
// what arrives goes to its socket and waits there until it reads. A
// process that takes over therefore reads nothing before it is ready, and
// those queries wait rather than get an answer from half-loaded zones.
//
// Linux lets only sockets of the same effective user join a group, so a
// process of another user cannot take traffic this way. On other systems
// Bind binds exclusively and steering does nothing.
package reuseport
