//! The uploads being read now: at most `uploads.max_in_flight` of them for the whole daemon,
//! and one per device. A body is held in memory whole until it is stored, so without this
//! bound memory grew with the connections one proven device could open
//! (`phone.max_connections` × `uploads.max_file_bytes`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::model::Mac;

/// Why no upload may be read now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Busy {
    /// Every slot of the daemon is taken (`uploads.max_in_flight`).
    #[error("the box is reading as many uploads as it may at once")]
    Daemon,
    /// This device has an upload being read already.
    #[error("an upload of this device is being read already")]
    Device,
}

/// The slots, shared by every phone connection.
#[derive(Debug)]
pub struct UploadSlots {
    slots: Arc<Semaphore>,
    devices: Arc<Mutex<HashSet<Mac>>>,
}

/// One upload's slot, given back when it is dropped (the upload stored or refused, or its
/// connection gone).
#[derive(Debug)]
pub struct Slot {
    _permit: OwnedSemaphorePermit,
    mac: Mac,
    devices: Arc<Mutex<HashSet<Mac>>>,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.devices
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.mac);
    }
}

impl UploadSlots {
    pub fn new(max_in_flight: u32) -> UploadSlots {
        let n = usize::try_from(max_in_flight)
            .unwrap_or(usize::MAX)
            .min(Semaphore::MAX_PERMITS);
        UploadSlots {
            slots: Arc::new(Semaphore::new(n)),
            devices: Arc::new(Mutex::new(HashSet::new())),
        }
    }

    /// A slot for an upload of device `mac`, at once or not at all: the device's own upload
    /// being read is checked first, so a device that floods gets [`Busy::Device`] and takes
    /// no slot another device could have.
    pub fn try_take(&self, mac: Mac) -> Result<Slot, Busy> {
        let mut devices = self.devices.lock().unwrap_or_else(PoisonError::into_inner);
        if devices.contains(&mac) {
            return Err(Busy::Device);
        }
        let permit = self
            .slots
            .clone()
            .try_acquire_owned()
            .map_err(|_| Busy::Daemon)?;
        devices.insert(mac);
        Ok(Slot {
            _permit: permit,
            mac,
            devices: self.devices.clone(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: Mac = Mac::from_octets([0, 4, 0xf2, 0, 0, 1]);
    const B: Mac = Mac::from_octets([0, 4, 0xf2, 0, 0, 2]);
    const C: Mac = Mac::from_octets([0, 4, 0xf2, 0, 0, 3]);

    #[test]
    fn one_upload_per_device_and_at_most_the_bound_in_all() {
        let slots = UploadSlots::new(2);
        let a = slots.try_take(A).unwrap();
        assert_eq!(slots.try_take(A).unwrap_err(), Busy::Device);
        let b = slots.try_take(B).unwrap();
        assert_eq!(slots.try_take(C).unwrap_err(), Busy::Daemon);
        // A refused device left nothing behind: once a slot is back, C takes it.
        drop(a);
        let c = slots.try_take(C).unwrap();
        assert_eq!(slots.try_take(A).unwrap_err(), Busy::Daemon);
        drop((b, c));
        slots.try_take(A).unwrap();
    }
}
