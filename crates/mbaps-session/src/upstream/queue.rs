//! The requests waiting for a device, shared fairly between the front
//! sessions that sent them.
//!
//! A device answers one request at a time (or a few); the front sessions
//! that share it must not decide for each other who gets it. Requests wait
//! in one queue per requester, and the requesters take turns (round
//! robin): a requester's next request goes out after one request of every
//! other requester that has one waiting, never behind another's burst.
//! Each requester may hold at most its share of the queue; when the queue
//! is full, a newcomer with fewer requests waiting takes the place of the
//! newest request of the requester that holds the most (that one is
//! answered busy), so that one session's burst is answered 0x06 before
//! another session's single request is.

use std::collections::VecDeque;
use std::time::Instant;

use crate::event::Pdu;

use super::Ticket;

/// Who sent a request: the front session it came from. The queue takes
/// turns between requesters.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Requester(pub u64);

/// A request waiting for a slot on the wire.
#[derive(Clone, Copy, Debug)]
pub(super) struct Queued {
    pub(super) ticket: Ticket,
    pub(super) unit_id: u8,
    pub(super) pdu: Pdu,
    pub(super) deadline: Instant,
}

/// One requester's waiting requests, in arrival order.
struct Waiting {
    requester: Requester,
    requests: VecDeque<Queued>,
}

/// What became of a request offered to the queue.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admission {
    /// It waits.
    Queued,
    /// It waits, in place of this newer request of a requester that held
    /// more: answer that one busy.
    QueuedInPlaceOf(Ticket),
    /// Its requester holds its share already, or the queue is full of
    /// requesters that hold no more than it: answer it busy.
    Refused,
}

/// Empty per-requester queues kept for reuse, so that a requester whose
/// queue empties and fills again (one session at 16 in flight) does not
/// allocate each time.
const SPARE_QUEUES: usize = 8;

/// The waiting requests of one device, by requester (see the module's
/// documentation).
pub(super) struct FairQueue {
    /// Requesters with requests waiting, in the order of their turns: the
    /// front's is next.
    turns: VecDeque<Waiting>,
    len: usize,
    capacity: usize,
    share: usize,
    spare: Vec<VecDeque<Queued>>,
}

impl FairQueue {
    /// A queue of `capacity` requests, at most `share` of them from one
    /// requester (both at least 1).
    pub(super) fn new(capacity: usize, share: usize) -> FairQueue {
        FairQueue {
            turns: VecDeque::new(),
            len: 0,
            capacity: capacity.max(1),
            share: share.clamp(1, capacity.max(1)),
            spare: Vec::new(),
        }
    }

    /// Requests waiting.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Offers `request` from `requester`.
    pub(super) fn push(&mut self, requester: Requester, request: Queued) -> Admission {
        let own = self.waiting(requester).map_or(0, |w| w.requests.len());
        if own >= self.share {
            return Admission::Refused;
        }
        let mut admission = Admission::Queued;
        if self.len >= self.capacity {
            // The requester holding the most gives up its newest request,
            // if it holds at least two more than this one will.
            let Some(victim) = self
                .heaviest()
                .filter(|&i| self.turns[i].requests.len() > own + 1)
            else {
                return Admission::Refused;
            };
            let Some(pushed_out) = self.turns[victim].requests.pop_back() else {
                return Admission::Refused;
            };
            self.len -= 1;
            admission = Admission::QueuedInPlaceOf(pushed_out.ticket);
        }
        match self.turns.iter_mut().find(|w| w.requester == requester) {
            Some(waiting) => waiting.requests.push_back(request),
            None => {
                let mut requests = self.spare.pop().unwrap_or_default();
                requests.push_back(request);
                // A newcomer takes its turn after everyone waiting.
                self.turns.push_back(Waiting {
                    requester,
                    requests,
                });
            }
        }
        self.len += 1;
        admission
    }

    /// The next request to send: the front requester's oldest, after
    /// which that requester's turn moves to the back.
    pub(super) fn pop(&mut self) -> Option<Queued> {
        let mut waiting = self.turns.pop_front()?;
        let request = waiting.requests.pop_front();
        if waiting.requests.is_empty() {
            self.recycle(waiting.requests);
        } else {
            self.turns.push_back(waiting);
        }
        if request.is_some() {
            self.len -= 1;
        }
        request
    }

    /// Takes every request whose deadline is at or before `now` out of the
    /// queue, handing each ticket to `expired`.
    pub(super) fn expire(&mut self, now: Instant, mut expired: impl FnMut(Ticket)) {
        let mut index = 0;
        while index < self.turns.len() {
            let requests = &mut self.turns[index].requests;
            // Each requester's requests are in arrival order, and so in
            // deadline order.
            while let Some(front) = requests.front().filter(|q| q.deadline <= now) {
                expired(front.ticket);
                requests.pop_front();
                self.len -= 1;
            }
            if requests.is_empty() {
                if let Some(waiting) = self.turns.remove(index) {
                    self.recycle(waiting.requests);
                }
            } else {
                index += 1;
            }
        }
    }

    /// The earliest deadline of a waiting request.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.turns
            .iter()
            .filter_map(|w| w.requests.front().map(|q| q.deadline))
            .min()
    }

    /// Takes every request out, handing each ticket to `taken`.
    pub(super) fn clear(&mut self, mut taken: impl FnMut(Ticket)) {
        while let Some(request) = self.pop() {
            taken(request.ticket);
        }
    }

    fn waiting(&self, requester: Requester) -> Option<&Waiting> {
        self.turns.iter().find(|w| w.requester == requester)
    }

    /// The index of the requester holding the most requests (the one
    /// whose turn is furthest on a tie: it would wait longest anyway).
    fn heaviest(&self) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        for (index, waiting) in self.turns.iter().enumerate() {
            let held = waiting.requests.len();
            if best.is_none_or(|(most, _)| held >= most) {
                best = Some((held, index));
            }
        }
        best.map(|(_, index)| index)
    }

    fn recycle(&mut self, mut requests: VecDeque<Queued>) {
        if self.spare.len() < SPARE_QUEUES && requests.capacity() <= self.share {
            requests.clear();
            self.spare.push(requests);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::time::Duration;

    #[allow(clippy::disallowed_methods)] // the tests own their clock
    fn epoch() -> Instant {
        Instant::now()
    }

    fn request(ticket: u64, at: Instant) -> Queued {
        Queued {
            ticket: Ticket(ticket),
            unit_id: 1,
            pdu: Pdu::copy_of(&[0x03, 0, 0, 0, 1]),
            deadline: at + Duration::from_secs(3),
        }
    }

    #[derive(Clone, Debug)]
    enum Op {
        Push(u8),
        Pop,
    }

    fn ops() -> impl Strategy<Value = Vec<Op>> {
        prop::collection::vec(
            prop_oneof![3 => (0u8..6).prop_map(Op::Push), 2 => Just(Op::Pop)],
            0..300,
        )
    }

    proptest! {
        /// No request waits behind more than one request of each other
        /// requester, beyond one per request of its own requester that was
        /// ahead of it; no ticket is lost or answered twice; the bounds
        /// hold.
        #[test]
        fn no_requester_waits_behind_more_than_one_request_of_another(
            ops in ops(),
            capacity in 1usize..24,
            share in 1usize..24,
        ) {
            let now = epoch();
            let mut queue = FairQueue::new(capacity, share);
            let share = share.min(capacity);
            // Ticket -> (requester, own requests ahead at arrival, pops of
            // each requester since its arrival).
            let mut waiting: std::collections::HashMap<u64, (u8, usize, [usize; 6])> =
                Default::default();
            let mut next = 0u64;
            for op in ops {
                match op {
                    Op::Push(requester) => {
                        let ticket = next;
                        next += 1;
                        let ahead = waiting.values().filter(|(r, ..)| *r == requester).count();
                        match queue.push(Requester(u64::from(requester)), request(ticket, now)) {
                            Admission::Refused => {
                                prop_assert!(ahead >= share || queue.len() >= capacity);
                            }
                            admission => {
                                if let Admission::QueuedInPlaceOf(out) = admission {
                                    let (victim, ..) = waiting.remove(&out.0).expect("a waiting ticket");
                                    prop_assert_ne!(victim, requester);
                                }
                                waiting.insert(ticket, (requester, ahead, [0; 6]));
                            }
                        }
                    }
                    Op::Pop => {
                        let Some(popped) = queue.pop() else {
                            prop_assert!(waiting.is_empty());
                            continue;
                        };
                        let (requester, ahead, served) =
                            waiting.remove(&popped.ticket.0).expect("popped a waiting ticket");
                        for (other, count) in served.iter().enumerate() {
                            if other != usize::from(requester) {
                                prop_assert!(
                                    *count <= ahead + 1,
                                    "requester {} waited behind {} of {}'s with {} of its own ahead",
                                    requester, count, other, ahead
                                );
                            }
                        }
                        for (_, _, served) in waiting.values_mut() {
                            served[usize::from(requester)] += 1;
                        }
                    }
                }
                prop_assert_eq!(queue.len(), waiting.len());
                prop_assert!(queue.len() <= capacity);
                for r in 0..6u8 {
                    prop_assert!(waiting.values().filter(|(w, ..)| *w == r).count() <= share);
                }
            }
        }
    }

    #[test]
    fn a_burst_gives_way_to_another_requesters_single_request() {
        let now = epoch();
        let mut queue = FairQueue::new(4, 4);
        for ticket in 0..4 {
            assert_eq!(
                queue.push(Requester(1), request(ticket, now)),
                Admission::Queued
            );
        }
        // Full of requester 1's burst: requester 2's one request takes the
        // place of 1's newest.
        assert_eq!(
            queue.push(Requester(2), request(9, now)),
            Admission::QueuedInPlaceOf(Ticket(3))
        );
        // 1's next is refused (it holds the most), 2 goes second.
        assert_eq!(
            queue.push(Requester(1), request(5, now)),
            Admission::Refused
        );
        let order: Vec<u64> = std::iter::from_fn(|| queue.pop())
            .map(|q| q.ticket.0)
            .collect();
        assert_eq!(order, [0, 9, 1, 2]);
    }

    #[test]
    fn expired_requests_leave_in_any_requesters_queue() {
        let now = epoch();
        let mut queue = FairQueue::new(8, 8);
        queue.push(Requester(1), request(0, now));
        queue.push(Requester(2), request(1, now + Duration::from_secs(1)));
        queue.push(Requester(1), request(2, now + Duration::from_secs(2)));
        assert_eq!(queue.next_deadline(), Some(now + Duration::from_secs(3)));
        let mut expired = Vec::new();
        queue.expire(now + Duration::from_secs(4), |t| expired.push(t.0));
        assert_eq!(expired, [0, 1]);
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.pop().map(|q| q.ticket), Some(Ticket(2)));
    }
}
