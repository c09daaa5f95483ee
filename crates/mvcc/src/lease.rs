//! Reads of the replicated lease state for the server's lessor and the Lease
//! service: which leases exist, their granted TTL, the keys attached to them,
//! and a generation number that moves whenever the set of leases may have
//! changed, so the lessor re-reads the set only then. Must never write, and
//! must never track time: remaining TTLs are the leader's business.

use redb::ReadableTable;

use crate::error::StoreError;
use crate::record::{LeaseKey, LEASES, LEASE_KEYS};
use crate::store::Store;
use crate::types::{Lease, LeaseWithKeys};

impl Store {
    /// The lease `id`, if granted.
    pub fn lease(&self, id: i64) -> Result<Option<Lease>, StoreError> {
        let txn = self.begin_read("starting a lease read")?;
        let leases = txn
            .open_table(LEASES)
            .map_err(StoreError::database("opening the lease table"))?;
        let ttl_seconds = leases
            .get(id)
            .map_err(StoreError::database("reading the lease table"))?
            .map(|guard| guard.value());
        Ok(ttl_seconds.map(|ttl_seconds| Lease { id, ttl_seconds }))
    }

    /// The lease `id` with its attached keys in key order, read at one point
    /// in time; `None` when not granted.
    pub fn lease_with_keys(&self, id: i64) -> Result<Option<LeaseWithKeys>, StoreError> {
        let txn = self.begin_read("starting a lease read")?;
        let leases = txn
            .open_table(LEASES)
            .map_err(StoreError::database("opening the lease table"))?;
        let Some(ttl_seconds) = leases
            .get(id)
            .map_err(StoreError::database("reading the lease table"))?
            .map(|guard| guard.value())
        else {
            return Ok(None);
        };
        let lease_keys = txn
            .open_table(LEASE_KEYS)
            .map_err(StoreError::database("opening the lease key table"))?;
        let keys = attached_keys(&lease_keys, id)?;
        Ok(Some(LeaseWithKeys {
            lease: Lease { id, ttl_seconds },
            keys,
        }))
    }

    /// Every granted lease, by id.
    pub fn leases(&self) -> Result<Vec<Lease>, StoreError> {
        let txn = self.begin_read("starting a lease read")?;
        let leases = txn
            .open_table(LEASES)
            .map_err(StoreError::database("opening the lease table"))?;
        let mut all = Vec::new();
        for entry in leases
            .iter()
            .map_err(StoreError::database("reading the lease table"))?
        {
            let (id, ttl_seconds) =
                entry.map_err(StoreError::database("reading the lease table"))?;
            all.push(Lease {
                id: id.value(),
                ttl_seconds: ttl_seconds.value(),
            });
        }
        Ok(all)
    }

    /// A number that changes whenever a grant, a revoke or a snapshot restore
    /// may have changed the set of leases; equal numbers mean the same set.
    /// It starts anew with every open.
    pub fn lease_generation(&self) -> u64 {
        self.lock().lease_generation
    }
}

/// The live keys attached to lease `id`, in key order.
pub(crate) fn attached_keys(
    lease_keys: &impl ReadableTable<LeaseKey, ()>,
    id: i64,
) -> Result<Vec<Vec<u8>>, StoreError> {
    let mut keys = Vec::new();
    for entry in lease_keys
        .range((id, &[][..])..)
        .map_err(StoreError::database("reading the keys of a lease"))?
    {
        let (lease_key, _) = entry.map_err(StoreError::database("reading the keys of a lease"))?;
        let (lease, key) = lease_key.value();
        if lease != id {
            break;
        }
        keys.push(key.to_vec());
    }
    Ok(keys)
}

#[cfg(test)]
mod tests;
