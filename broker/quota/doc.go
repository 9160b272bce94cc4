// Package quota enforces client quotas as Kafka does (KIP-13, KIP-55,
// KIP-219): byte rates per user, per client id or per (user, client id),
// stored in the metadata quorum (metadata.ClientQuota), measured per
// client over a sliding window, and turned into a throttle time.
//
// # Resolution
//
// For each quota key separately (producer_byte_rate for Produce,
// consumer_byte_rate for Fetch), the first configured entity of this list
// applies, Kafka's order:
//
//  1. user=<user>,     client-id=<client-id>
//  2. user=<user>,     client-id=<default>
//  3. user=<user>
//  4. user=<default>,  client-id=<client-id>
//  5. user=<default>,  client-id=<default>
//  6. user=<default>
//  7. client-id=<client-id>
//  8. client-id=<default>
//
// No match: no quota. The user is the connection's authenticated
// principal's name (ANONYMOUS without authentication), the client id the
// request header's. The entity that matched also decides who shares a
// rate (Kafka's sensor tags): levels 1, 2, 4, 5 measure each (user,
// client id) apart; 3 and 6 all of a user's clients together; 7 and 8 all
// users of a client id together.
//
// # Rate and throttle time
//
// A rate is Kafka's Rate over --quota-window-num samples (default 11) of
// --quota-window-size-seconds each (default 1): a sample starts at the
// first record after the previous one completed, samples older than
// num × size are dropped, and the rate is the sum of the samples divided
// by the time since the oldest began — but at least (num−1) × size, so a
// new client's first bytes are not measured over a few milliseconds. The
// bytes are recorded first; if the rate then exceeds the quota Q, the
// throttle time is Kafka's
//
//	(rate − Q) / Q × window
//
// (window being that elapsed time), rounded to milliseconds: how long the
// client must stay idle for its rate to come back to Q.
//
// # Concurrency
//
// A Manager is safe for concurrent use; one mutex guards its rates.
// Rates idle for num × size (whose samples would all have been dropped)
// are forgotten, so memory follows the clients active in the last window.
package quota
