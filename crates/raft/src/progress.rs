//! What the leader knows about one follower's log, and how fast it may send to
//! it: probing one message at a time until the logs match, then pipelining up
//! to a bounded number of appends, or waiting while a snapshot is installed.

use std::collections::VecDeque;

use crate::types::{LogIndex, NodeId};

/// How the leader currently replicates to a follower.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProgressState {
    /// The match point is unknown: send one append, wait for its answer.
    Probe,
    /// The logs match through `match_index`: stream appends optimistically.
    Replicate,
    /// The follower needs a snapshot; appends wait until it is installed.
    Snapshot,
}

/// A read-only view of a follower's progress, for status reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ProgressView {
    pub id: NodeId,
    pub match_index: LogIndex,
    pub next_index: LogIndex,
    pub state: ProgressState,
}

#[derive(Clone, Debug)]
pub(crate) struct Progress {
    pub(crate) match_index: LogIndex,
    pub(crate) next_index: LogIndex,
    pub(crate) state: ProgressState,
    /// In probe state: an append is out and unanswered, so send no other until
    /// a response or the next heartbeat round.
    pub(crate) probe_sent: bool,
    /// In snapshot state: the index of the snapshot being installed.
    pub(crate) pending_snapshot: LogIndex,
    /// Heard from since the last CheckQuorum round.
    pub(crate) recently_active: bool,
    /// The highest commit index sent to this follower, so a commit it has not
    /// yet heard of is sent even when there are no new entries.
    pub(crate) commit_sent: LogIndex,
    /// Last index of each append in flight, oldest first, in replicate state.
    inflight: VecDeque<LogIndex>,
    inflight_max: usize,
}

impl Progress {
    pub(crate) fn new(next_index: LogIndex, inflight_max: usize) -> Self {
        Self {
            match_index: 0,
            next_index,
            state: ProgressState::Probe,
            probe_sent: false,
            pending_snapshot: 0,
            recently_active: false,
            commit_sent: 0,
            inflight: VecDeque::with_capacity(inflight_max.min(64)),
            inflight_max,
        }
    }

    pub(crate) fn view(&self, id: NodeId) -> ProgressView {
        ProgressView {
            id,
            match_index: self.match_index,
            next_index: self.next_index,
            state: self.state,
        }
    }

    fn reset_state(&mut self, state: ProgressState) {
        self.state = state;
        self.probe_sent = false;
        self.pending_snapshot = 0;
        self.inflight.clear();
    }

    pub(crate) fn become_probe(&mut self) {
        let next_index = if self.state == ProgressState::Snapshot {
            (self.match_index + 1).max(self.pending_snapshot + 1)
        } else {
            self.match_index + 1
        };
        self.reset_state(ProgressState::Probe);
        self.next_index = next_index;
    }

    pub(crate) fn become_replicate(&mut self) {
        self.reset_state(ProgressState::Replicate);
        self.next_index = self.match_index + 1;
    }

    pub(crate) fn become_snapshot(&mut self, snapshot_index: LogIndex) {
        self.reset_state(ProgressState::Snapshot);
        self.pending_snapshot = snapshot_index;
    }

    /// Whether the leader must hold back appends to this follower for now.
    pub(crate) fn is_paused(&self) -> bool {
        match self.state {
            ProgressState::Probe => self.probe_sent,
            ProgressState::Replicate => self.inflight.len() >= self.inflight_max,
            ProgressState::Snapshot => true,
        }
    }

    /// Records that an append ending at `last_index` was sent.
    pub(crate) fn sent_append(&mut self, last_index: LogIndex, entry_count: usize) {
        match self.state {
            ProgressState::Replicate => {
                if entry_count > 0 {
                    self.next_index = last_index + 1;
                    self.inflight.push_back(last_index);
                }
            }
            ProgressState::Probe => self.probe_sent = true,
            ProgressState::Snapshot => {
                debug_assert!(false, "append sent while a snapshot is pending");
            }
        }
    }

    /// Records an acknowledgement through `index`. Returns whether it was news.
    pub(crate) fn acknowledge(&mut self, index: LogIndex) -> bool {
        let advanced = index > self.match_index;
        if advanced {
            self.match_index = index;
            self.probe_sent = false;
        }
        self.next_index = self.next_index.max(index + 1);
        while self.inflight.front().is_some_and(|&sent| sent <= index) {
            self.inflight.pop_front();
        }
        advanced
    }

    /// Handles a rejection of the append probing at `rejected_index`; `next_probe`
    /// is where the follower's hint says to try next. Returns false when the
    /// rejection is stale (it answers an append older than the current probe).
    pub(crate) fn reject(&mut self, rejected_index: LogIndex, next_probe: LogIndex) -> bool {
        if self.state == ProgressState::Replicate {
            if rejected_index <= self.match_index {
                return false;
            }
            self.become_probe();
            self.next_index = next_probe.min(rejected_index).max(self.match_index + 1);
            return true;
        }
        if self.next_index.saturating_sub(1) != rejected_index {
            return false;
        }
        self.next_index = next_probe.max(self.match_index + 1).min(rejected_index);
        self.next_index = self.next_index.max(1);
        self.probe_sent = false;
        true
    }

    /// A heartbeat answer: lets a paused probe try again, and frees one slot of
    /// a full window, since appends in it may have been lost and only a new
    /// append can reveal the gap.
    pub(crate) fn heard_heartbeat_response(&mut self) {
        self.probe_sent = false;
        if self.state == ProgressState::Replicate && self.inflight.len() >= self.inflight_max {
            self.inflight.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_sends_one_at_a_time() {
        let mut progress = Progress::new(5, 4);
        assert!(!progress.is_paused());
        progress.sent_append(6, 2);
        assert!(progress.is_paused());
        progress.heard_heartbeat_response();
        assert!(!progress.is_paused());
    }

    #[test]
    fn replicate_pauses_at_inflight_limit_and_frees_on_ack() {
        let mut progress = Progress::new(1, 2);
        progress.acknowledge(0);
        progress.become_replicate();
        progress.sent_append(3, 3);
        progress.sent_append(5, 2);
        assert!(progress.is_paused());
        assert_eq!(progress.next_index, 6);
        progress.acknowledge(3);
        assert!(!progress.is_paused());
        assert_eq!(progress.match_index, 3);
    }

    #[test]
    fn heartbeat_response_frees_a_full_window() {
        let mut progress = Progress::new(1, 1);
        progress.become_replicate();
        progress.sent_append(2, 2);
        assert!(progress.is_paused());
        progress.heard_heartbeat_response();
        assert!(!progress.is_paused());
    }

    #[test]
    fn stale_reject_is_ignored_in_probe() {
        let mut progress = Progress::new(10, 4);
        assert!(progress.reject(9, 4));
        assert_eq!(progress.next_index, 4);
        assert!(!progress.reject(9, 2), "answer to an older probe");
        assert_eq!(progress.next_index, 4);
    }

    #[test]
    fn reject_in_replicate_falls_back_to_probe_past_match() {
        let mut progress = Progress::new(1, 4);
        progress.acknowledge(5);
        progress.become_replicate();
        progress.sent_append(9, 4);
        assert!(!progress.reject(4, 1), "at or below match: stale");
        assert!(progress.reject(8, 2));
        assert_eq!(progress.state, ProgressState::Probe);
        assert_eq!(progress.next_index, 6);
    }
}
