//! DHCP leases, keyed by address. The DHCP server writes the leases of a batch of ACKs in one
//! transaction (group commit) and sends those ACKs only after it committed.

use redb::ReadableDatabase;

use super::{LEASES, Store, StoreError, encode, read_all};
use crate::model::Lease;

impl Store {
    /// Every stored lease, in address-text order.
    pub fn list_leases(&self) -> Result<Vec<Lease>, StoreError> {
        let tx = self.db()?.begin_read()?;
        read_all(&tx.open_table(LEASES)?, "leases")
    }

    /// Writes a batch of leases in one durable transaction; a lease replaces the record of its
    /// address. Uncounted: no rendered file depends on a lease, and in a boot storm the DHCP
    /// server commits many batches a second while the same phones fetch their files: counting
    /// them would drop every rendered file (a 1 MB 46xxsettings.txt among them) at each one.
    pub fn put_leases(&self, leases: &[Lease]) -> Result<(), StoreError> {
        if leases.is_empty() {
            return Ok(());
        }
        let tx = self.begin_uncounted_write()?;
        {
            let mut table = tx.open_table(LEASES)?;
            for lease in leases {
                let key = lease.ip.to_string();
                table.insert(key.as_str(), encode(lease).as_slice())?;
            }
        }
        tx.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use crate::model::{LeaseState, Mac};

    /// A bound lease of `ip` for the client whose MAC ends in `m`.
    fn lease(ip: [u8; 4], m: u8) -> Lease {
        Lease {
            ip: Ipv4Addr::from(ip),
            mac: Mac::from_octets([0, 0, 0, 0, 0, m]),
            client_id: String::new(),
            hostname: String::new(),
            vendor_class: String::new(),
            state: LeaseState::Bound,
            starts: 1,
            expires: 2,
            granted: 1,
        }
    }

    #[test]
    fn batch_survives_reopen_and_replaces_by_address() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db.redb");
        {
            let store = Store::open(&path).unwrap();
            store
                .put_leases(&[lease([10, 0, 0, 1], 1), lease([10, 0, 0, 2], 2)])
                .unwrap();
            store.put_leases(&[lease([10, 0, 0, 1], 3)]).unwrap();
        }
        let store = Store::open(&path).unwrap();
        let all = store.list_leases().unwrap();
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].mac, Mac::from_octets([0, 0, 0, 0, 0, 3]));
    }

    /// Leases are written by every ACK batch of a boot storm; files rendered for phones do
    /// not depend on them and must outlive those commits.
    #[test]
    fn lease_commits_keep_the_rendered_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("db.redb")).unwrap();
        let generation = store.generation();
        store.put_leases(&[lease([10, 0, 0, 1], 1)]).unwrap();
        assert_eq!(store.list_leases().unwrap().len(), 1);
        assert_eq!(store.generation(), generation, "rendered files stay");
    }
}
