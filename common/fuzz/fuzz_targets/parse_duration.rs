#![no_main]

use common::duration::{format_duration, parse_duration};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    match parse_duration(input) {
        // Whatever parses prints back to something that parses to the same duration.
        Ok(duration) => assert_eq!(parse_duration(&format_duration(duration)), Ok(duration)),
        // Messages stay short whatever the input.
        Err(message) => assert!(message.len() < 300, "{message}"),
    }
});
