//! scrypt is memory-hard: a burst of failed logins on imported Werkzeug accounts must not be
//! able to take the process past its container memory limit.
#![allow(clippy::unwrap_used, clippy::panic)]

use crypto::Verified;

//   generate_password_hash("Secret123", method="scrypt")  (Werkzeug 3.1.8 default: N=2^15, r=8,
//   32 MiB per verification)
const WERKZEUG_SCRYPT_DEFAULT: &str = "scrypt:32768:8:1$7SBsJoeijf5hhkCx$a47e85dd618275049066d85043b6735ff24c34593852c8d60dad19eb470e23be01b46ab6902c081bf57bd6fa537c29ab0a18bbbc7150d2bf29559c94d9383d39";

/// Peak resident memory of this process so far (kiB).
fn vm_hwm_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn parallel_scrypt_verifications_stay_within_the_memory_budget() {
    let before = vm_hwm_kib();
    let threads: Vec<_> = (0..8)
        .map(|i| {
            std::thread::spawn(move || {
                let password = if i == 0 { "Secret123" } else { "Wrong-guess-1" };
                crypto::verify_password(password, WERKZEUG_SCRYPT_DEFAULT, 600_000)
            })
        })
        .collect();
    let results: Vec<Verified> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(
        results[0],
        Verified::Valid { needs_rehash: true },
        "the right password still verifies"
    );
    assert!(results[1..].iter().all(|v| *v == Verified::Invalid));
    let grown_mib = vm_hwm_kib().saturating_sub(before) / 1024;
    assert!(
        crypto::password::scrypt_memory_peak() <= crypto::password::SCRYPT_MEMORY_BUDGET,
        "{} bytes of scrypt memory at once",
        crypto::password::scrypt_memory_peak()
    );
    // 8 × 32 MiB unbounded; at most 64 MiB (+ allocator slack) bounded.
    assert!(
        grown_mib < 100,
        "peak RSS grew by {grown_mib} MiB during 8 parallel scrypt verifications"
    );
}
