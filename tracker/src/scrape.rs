//! Parsing of HTTP scrape requests (BEP 48).

use seednode_wire::InfoHash;

use crate::announce::AnnounceError;
use crate::limits::{MAX_SCRAPE_INFO_HASHES, MAX_SCRAPE_QUERY_LEN, MAX_SCRAPE_QUERY_PARAMS};
use crate::query::{decode_20, pairs};

/// A validated HTTP scrape request: 1 to [`MAX_SCRAPE_INFO_HASHES`] info-hashes, sorted and
/// without duplicates (the order of the `files` dictionary, whose keys must be sorted and unique).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScrapeRequest {
    /// The info-hashes asked about, sorted, unique.
    pub info_hashes: Vec<InfoHash>,
}

impl ScrapeRequest {
    /// Parses the query string of `GET /scrape?...`: every `info_hash` parameter (BEP 48), each
    /// percent-decoding to exactly 20 bytes. Other parameters are ignored.
    ///
    /// # Errors
    /// [`AnnounceError::TooLarge`] for a query over [`MAX_SCRAPE_QUERY_LEN`] bytes (refused before
    /// it is scanned) or [`MAX_SCRAPE_QUERY_PARAMS`] pairs; [`AnnounceError::TooManyInfoHashes`]
    /// at the first info-hash over [`MAX_SCRAPE_INFO_HASHES`]; [`AnnounceError::Invalid`] for an
    /// info-hash of the wrong length or a bad escape; [`AnnounceError::FullScrape`] when there is
    /// none.
    pub fn parse_query(query: &[u8]) -> Result<Self, AnnounceError> {
        if query.len() > MAX_SCRAPE_QUERY_LEN {
            return Err(AnnounceError::TooLarge);
        }
        let mut info_hashes = Vec::new();
        for (n, (key, value)) in pairs(query).enumerate() {
            if n >= MAX_SCRAPE_QUERY_PARAMS {
                return Err(AnnounceError::TooLarge);
            }
            if key == b"info_hash" {
                if info_hashes.len() == MAX_SCRAPE_INFO_HASHES {
                    return Err(AnnounceError::TooManyInfoHashes {
                        limit: MAX_SCRAPE_INFO_HASHES,
                    });
                }
                let raw = decode_20(value).map_err(|()| AnnounceError::Invalid("info_hash"))?;
                info_hashes.push(InfoHash(raw));
            }
        }
        if info_hashes.is_empty() {
            return Err(AnnounceError::FullScrape);
        }
        info_hashes.sort_unstable();
        info_hashes.dedup();
        Ok(Self { info_hashes })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bep48_multiple_info_hashes_sorted_and_deduplicated() {
        let q = format!(
            "info_hash={}&info_hash={}&passkey=x&info_hash={}",
            "z".repeat(20),
            "%78".repeat(20),
            "z".repeat(20)
        );
        let req = ScrapeRequest::parse_query(q.as_bytes()).unwrap();
        assert_eq!(
            req.info_hashes,
            vec![InfoHash([b'x'; 20]), InfoHash([b'z'; 20])]
        );
    }

    #[test]
    fn refuses_full_scrape_bad_hash_and_too_many() {
        assert_eq!(
            ScrapeRequest::parse_query(b""),
            Err(AnnounceError::FullScrape)
        );
        assert_eq!(
            ScrapeRequest::parse_query(b"info_hash=short"),
            Err(AnnounceError::Invalid("info_hash"))
        );
        let one = format!("info_hash={}&", "a".repeat(20));
        let q = one.repeat(MAX_SCRAPE_INFO_HASHES + 1);
        assert_eq!(
            ScrapeRequest::parse_query(q.as_bytes()),
            Err(AnnounceError::TooManyInfoHashes {
                limit: MAX_SCRAPE_INFO_HASHES
            })
        );
        let q = one.repeat(MAX_SCRAPE_INFO_HASHES);
        assert!(ScrapeRequest::parse_query(q.as_bytes()).is_ok());
    }

    #[test]
    fn ten_thousand_info_hashes_are_refused_by_length() {
        let one = format!("info_hash={}&", "%61".repeat(20));
        let q = one.repeat(10_000);
        assert_eq!(
            ScrapeRequest::parse_query(q.as_bytes()),
            Err(AnnounceError::TooLarge)
        );
        // The longest legal scrape (64 fully escaped hashes) fits under the length limit.
        let q = one.repeat(MAX_SCRAPE_INFO_HASHES);
        assert!(q.len() <= MAX_SCRAPE_QUERY_LEN);
        assert_eq!(
            ScrapeRequest::parse_query(q.as_bytes())
                .unwrap()
                .info_hashes
                .len(),
            1
        );
    }
}
