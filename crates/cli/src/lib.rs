//! The parts of the `cairn` tools that other crates' tests drive in
//! process: `cairn hammer`, so a test can put load on a real log and read
//! the summary without parsing output, and `cairn fsck`, so a test can
//! check a log it runs (with the key files they share), and `cairn cluster`,
//! so a cluster test can run the operator commands it documents.

pub mod cluster;
pub mod files;
pub mod fsck;
pub mod hammer;
pub mod key_files;
pub mod registry_cmd;
