//! The parts of the `cairn` tools that other crates' tests drive in
//! process: `cairn hammer`, so a test can put load on a real log and read
//! the summary without parsing output.

pub mod hammer;
