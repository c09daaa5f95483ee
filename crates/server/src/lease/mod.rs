//! The lessor: the part of etcd's leases that is not replicated. Which leases
//! exist, their TTLs and attached keys live in the state machine (`mvcc`);
//! how long each lease has left lives here, on the member that leads.
//!
//! The leader keeps a deadline per lease ([`clock`]); a background task
//! checks them every `check_interval` and proposes a revoke for each expired
//! lease (at most [`REVOKES_PER_CHECK_MAX`] per check). KeepAlive and
//! TimeToLive need those deadlines, so on a follower they are forwarded to
//! the leader's client URL ([`forward`], through [`crate::to_leader`]), as
//! etcd forwards them to its leader. Lease ids for grants that ask for any
//! id come from [`ids`]. This module never changes replicated state except
//! by proposing through the [`Backend`].

mod clock;
mod forward;
mod ids;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::{Duration, Instant};

use tonic::Status;

use crate::api::errors::{backend_error, store_error};
use crate::backend::Backend;
use crate::config::ServeConfig;
use crate::to_leader::{on_leader, Local};
use clock::{LeaseClock, Renewal};
use forward::Forwarder;
use ids::LeaseIds;

/// Expired leases revoked per check at most; etcd revokes at most 1000 a
/// second, which this matches at the default 100 ms check interval.
pub const REVOKES_PER_CHECK_MAX: usize = 100;

/// The lessor's settings, derived from the member's timing as etcd does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LeaseOptions {
    /// Shorter TTLs are raised to this: 1.5 election timeouts, in whole
    /// seconds rounded up (etcd's minimum lease TTL).
    pub ttl_seconds_min: i64,
    /// Added to every lease's TTL when a member starts leading, so leases do
    /// not expire while leadership moves (etcd's promotion extension).
    pub promotion_extension: Duration,
    /// How often the leader looks for expired leases.
    pub check_interval: Duration,
    /// How long a KeepAlive or TimeToLive may try to reach the leader, and
    /// how long a proposed revoke may take before it is proposed again.
    pub request_timeout: Duration,
}

impl LeaseOptions {
    /// The options for etcd's timing flags: `election_timeout` and the
    /// heartbeat `tick_interval`.
    pub fn for_timing(election_timeout: Duration, tick_interval: Duration) -> Self {
        let minimum_millis = election_timeout.as_millis() * 3 / 2;
        Self {
            ttl_seconds_min: i64::try_from(minimum_millis.div_ceil(1000)).unwrap_or(i64::MAX),
            promotion_extension: election_timeout,
            check_interval: tick_interval,
            request_timeout: Duration::from_secs(5) + 2 * election_timeout,
        }
    }

    pub fn from_config(config: &ServeConfig) -> Self {
        Self::for_timing(
            Duration::from_millis(config.election_timeout_ms()),
            config.tick_interval(),
        )
    }
}

impl Default for LeaseOptions {
    /// etcd's defaults: a 1000 ms election timeout, 100 ms heartbeats.
    fn default() -> Self {
        Self::for_timing(Duration::from_millis(1000), Duration::from_millis(100))
    }
}

/// What a lease looks like to TimeToLive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeToLive {
    /// Whole seconds left (negative once past the deadline, until revoked).
    pub remaining_seconds: i64,
    pub granted_ttl_seconds: i64,
    /// The attached keys, when asked for.
    pub keys: Vec<Vec<u8>>,
}

/// One member's lessor; shared by the Lease service and the expiry task.
#[derive(Debug)]
pub struct Lessor {
    options: LeaseOptions,
    clock: Mutex<LeaseClock>,
    ids: LeaseIds,
    forwarder: Forwarder,
}

impl Lessor {
    /// A lessor for `backend`'s member, with its expiry task running on the
    /// current tokio runtime until the lessor is dropped.
    pub fn start<B: Backend>(backend: Arc<B>, options: LeaseOptions) -> Arc<Lessor> {
        let lessor = Arc::new(Lessor {
            options,
            clock: Mutex::new(LeaseClock::default()),
            ids: LeaseIds::new(backend.status().member_id),
            forwarder: Forwarder::default(),
        });
        tokio::spawn(expire_leases(Arc::downgrade(&lessor), backend));
        lessor
    }

    pub fn options(&self) -> &LeaseOptions {
        &self.options
    }

    /// An id for a grant that asked for any.
    pub fn next_id(&self) -> i64 {
        self.ids.next()
    }

    fn clock(&self) -> MutexGuard<'_, LeaseClock> {
        self.clock.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Brings the deadlines in line with the member's role and the store's
    /// leases; whether this member leads.
    fn sync<B: Backend>(&self, backend: &B) -> Result<bool, Status> {
        let status = backend.status();
        let leading_term = (status.leader == Some(status.member_id)).then_some(status.raft_term);
        let store = backend.store();
        let generation = store.lease_generation();
        let mut clock = self.clock();
        let leases = if clock.needs_leases(leading_term, generation) {
            store
                .leases()
                .map_err(|error| store_error(&error))?
                .into_iter()
                .map(|lease| (lease.id, lease.ttl_seconds))
                .collect()
        } else {
            Vec::new()
        };
        clock.sync(
            Instant::now(),
            leading_term,
            generation,
            &leases,
            self.options.promotion_extension,
        );
        Ok(clock.is_leading())
    }

    /// The lease's granted TTL; a lease not found locally is looked up again
    /// after the read barrier, since a new leader may not have applied its
    /// grant yet.
    async fn granted<B: Backend, T>(
        backend: &B,
        read: impl Fn(&mvcc::Store) -> Result<Option<T>, mvcc::StoreError>,
    ) -> Result<Option<T>, Status> {
        let store = backend.store();
        if let Some(found) = read(store).map_err(|error| store_error(&error))? {
            return Ok(Some(found));
        }
        backend.read_barrier().await.map_err(backend_error)?;
        read(store).map_err(|error| store_error(&error))
    }

    async fn renew_here<B: Backend>(&self, backend: &B, id: i64) -> Result<Local<i64>, Status> {
        if !self.sync(backend)? {
            return Ok(Local::NotLeader);
        }
        let Some(lease) = Self::granted(backend, |store| store.lease(id)).await? else {
            return Ok(Local::Answered(0));
        };
        Ok(
            match self.clock().renew(Instant::now(), id, lease.ttl_seconds) {
                Renewal::Renewed { ttl_seconds } => Local::Answered(ttl_seconds),
                Renewal::Expired => Local::Answered(0),
                Renewal::NotLeading => Local::NotLeader,
            },
        )
    }

    async fn time_to_live_here<B: Backend>(
        &self,
        backend: &B,
        id: i64,
        with_keys: bool,
    ) -> Result<Local<Option<TimeToLive>>, Status> {
        if !self.sync(backend)? {
            return Ok(Local::NotLeader);
        }
        let Some(found) = Self::granted(backend, |store| store.lease_with_keys(id)).await? else {
            return Ok(Local::Answered(None));
        };
        let granted_ttl_seconds = found.lease.ttl_seconds;
        let remaining_seconds = self
            .clock()
            .remaining_seconds(Instant::now(), id)
            .unwrap_or(granted_ttl_seconds);
        Ok(Local::Answered(Some(TimeToLive {
            remaining_seconds,
            granted_ttl_seconds,
            keys: if with_keys { found.keys } else { Vec::new() },
        })))
    }

    /// Renews the lease (etcd's LeaseRenew) on the leader, from any member;
    /// the TTL it now has, or 0 when it does not exist or has expired.
    /// `forwarded` requests came from another member and are not passed on.
    pub async fn keep_alive<B: Backend>(
        &self,
        backend: &B,
        id: i64,
        forwarded: bool,
    ) -> Result<i64, Status> {
        on_leader(
            backend,
            forwarded,
            self.options.request_timeout,
            || self.renew_here(backend, id),
            |url| async move { self.forwarder.keep_alive(&url, id).await },
        )
        .await
    }

    /// The lease's remaining and granted TTL (and keys) as the leader knows
    /// them, from any member; `None` when it does not exist.
    pub async fn time_to_live<B: Backend>(
        &self,
        backend: &B,
        id: i64,
        with_keys: bool,
        forwarded: bool,
    ) -> Result<Option<TimeToLive>, Status> {
        on_leader(
            backend,
            forwarded,
            self.options.request_timeout,
            || self.time_to_live_here(backend, id, with_keys),
            |url| async move { self.forwarder.time_to_live(&url, id, with_keys).await },
        )
        .await
    }
}

/// The expiry task: every check interval, while the lessor lives, follow the
/// member's role and propose revokes for expired leases.
async fn expire_leases<B: Backend>(lessor: Weak<Lessor>, backend: Arc<B>) {
    let Some(interval) = lessor.upgrade().map(|lessor| lessor.options.check_interval) else {
        return;
    };
    let mut checks = tokio::time::interval(interval);
    checks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        checks.tick().await;
        let Some(strong) = lessor.upgrade() else {
            return;
        };
        match strong.sync(&*backend) {
            Ok(true) => {}
            Ok(false) => continue,
            Err(status) => {
                tracing::warn!(%status, "cannot read the leases to check their deadlines");
                continue;
            }
        }
        let expired = strong.clock().take_expired(
            Instant::now(),
            REVOKES_PER_CHECK_MAX,
            strong.options.request_timeout,
        );
        for id in expired {
            tokio::spawn(revoke_expired(lessor.clone(), Arc::clone(&backend), id));
        }
    }
}

async fn revoke_expired<B: Backend>(lessor: Weak<Lessor>, backend: Arc<B>, id: i64) {
    tracing::debug!(lease = format_args!("{id:x}"), "lease expired; revoking it");
    let revoke = mvcc::Command::LeaseRevoke(mvcc::LeaseRevokeRequest { id });
    if let Err(error) = backend.propose(revoke).await {
        tracing::debug!(lease = format_args!("{id:x}"), %error, "revoking an expired lease failed; will retry");
        if let Some(lessor) = lessor.upgrade() {
            lessor.clock().revoke_failed(id);
        }
    }
}
