//! The cloud's answers on arbitrary bytes, read as the sync client reads them: a changes page
//! is counted ([`page_items::check`]), decoded and checked into what the store would apply;
//! a registration or an event acknowledgement is decoded. None may panic, and a page the
//! checks pass converts every device it holds.
#![no_main]

use std::collections::HashSet;

use edgeprov::sync::client::decode;
use edgeprov::sync::page_items::{self, MAX_PAGE_ITEMS};
use edgeprov::sync::protocol::{ChangesPage, EventAck, RegisterResponse};
use edgeprov::sync::pull::{check_cycle, validate};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = decode::<RegisterResponse>(data);
    let _ = decode::<EventAck>(data);
    if page_items::check(data, MAX_PAGE_ITEMS).is_err() {
        return;
    }
    let Ok(page) = decode::<ChangesPage>(data) else {
        return;
    };
    let pulled: HashSet<String> = [page.cursor.clone()].into();
    if let Ok(update) = validate(&page, &page.cursor) {
        assert_eq!(update.devices.len(), page.devices.len());
        let _ = check_cycle(&page, &pulled);
    }
});
