//! Pure code for the files phones ask for: layered parameters and their rendering.

pub mod device_file;
pub mod layered;
pub mod quote;
