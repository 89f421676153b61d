//! SIP plug-and-play (RFC 6080 `ua-profile`): phones that get no provisioning URL from DHCP
//! (a site whose router's DHCP the installer cannot change) multicast a SUBSCRIBE to
//! 224.0.1.75:5060 at boot; this answers it and sends the URL in a NOTIFY, as PBXs and vendor
//! tools do. Yealink phones ask by default, as do Snom, Grandstream, Fanvil and others.
//!
//! Pure code: `message` (a SIP message from one datagram), `profile` (what a message is and the
//! answers to it), `transactions` (retransmission and repeated requests, time passed in).

pub mod message;
pub mod profile;
pub mod transactions;
