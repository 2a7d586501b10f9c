//! Conversions between domain types and wire messages, written once and used by both the server
//! and the client adapters of each boundary.
use chrono::{TimeZone, Utc};
use domain::{Error, Timestamp};
use uuid::Uuid;

pub mod internal;
pub mod v1;

/// `chrono` → protobuf timestamp.
pub fn ts(t: Timestamp) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: t.timestamp(),
        nanos: i32::try_from(t.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

pub fn opt_ts(t: Option<Timestamp>) -> Option<prost_types::Timestamp> {
    t.map(ts)
}

/// protobuf timestamp → `chrono`; out-of-range values are a validation error on `field`.
pub fn from_ts(t: Option<prost_types::Timestamp>, field: &str) -> Result<Timestamp, Error> {
    let t = t.ok_or_else(|| Error::validation(field, "is required"))?;
    let nanos =
        u32::try_from(t.nanos).map_err(|_| Error::validation(field, "is not a valid timestamp"))?;
    Utc.timestamp_opt(t.seconds, nanos)
        .single()
        .ok_or_else(|| Error::validation(field, "is not a valid timestamp"))
}

pub fn from_opt_ts(
    t: Option<prost_types::Timestamp>,
    field: &str,
) -> Result<Option<Timestamp>, Error> {
    t.map(|t| from_ts(Some(t), field)).transpose()
}

/// A UUID string; anything else is a validation error on `field`.
pub fn uuid(s: &str, field: &str) -> Result<Uuid, Error> {
    Uuid::parse_str(s).map_err(|_| Error::validation(field, "must be a UUID"))
}

pub fn parse<T: std::str::FromStr<Err = String>>(s: &str, field: &str) -> Result<T, Error> {
    s.parse().map_err(|m: String| Error::validation(field, m))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_round_trip_to_the_nanosecond() {
        let t = Utc
            .timestamp_opt(1_700_000_000, 123_456_789)
            .single()
            .unwrap();
        assert_eq!(from_ts(Some(ts(t)), "t").unwrap(), t);
        assert!(from_ts(None, "t").is_err());
        assert!(
            from_ts(
                Some(prost_types::Timestamp {
                    seconds: 0,
                    nanos: -1
                }),
                "t"
            )
            .is_err()
        );
        assert!(uuid("nope", "id").is_err());
    }
}
