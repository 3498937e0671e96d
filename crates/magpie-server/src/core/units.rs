//! Sizes as Redis reads and prints them: `64mb` in settings, `1.50M` in INFO.

/// Parses a size as Redis does: a number with an optional unit (k = 1000, kb = 1024, m, mb,
/// g, gb), any case.
pub(crate) fn parse_memory(s: &str) -> Option<usize> {
    let s = s.to_ascii_lowercase();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let mul: usize = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    num.parse::<usize>().ok()?.checked_mul(mul)
}

/// Bytes as Redis's `*_human` fields show them: `512B`, `1.50K`, `2.00M`, ...
pub(crate) fn human(n: u64) -> String {
    const UNITS: [(f64, &str); 5] = [
        (1024.0, "K"),
        (1024.0 * 1024.0, "M"),
        (1024.0 * 1024.0 * 1024.0, "G"),
        (1024.0 * 1024.0 * 1024.0 * 1024.0, "T"),
        (1024.0 * 1024.0 * 1024.0 * 1024.0 * 1024.0, "P"),
    ];
    if n < 1024 {
        return format!("{n}B");
    }
    let x = n as f64;
    let (div, unit) = UNITS.iter().rev().find(|(d, _)| x >= *d).copied().unwrap_or(UNITS[0]);
    format!("{:.2}{unit}", x / div)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_sizes_follow_redis() {
        assert_eq!(human(0), "0B");
        assert_eq!(human(1023), "1023B");
        assert_eq!(human(1024), "1.00K");
        assert_eq!(human(1536), "1.50K");
        assert_eq!(human(3 * 1024 * 1024), "3.00M");
        assert_eq!(human(5 << 30), "5.00G");
    }

    #[test]
    fn memory_units() {
        assert_eq!(parse_memory("512mb"), Some(512 * 1024 * 1024));
        assert_eq!(parse_memory("1GB"), Some(1 << 30));
        assert_eq!(parse_memory("10k"), Some(10_000));
        assert_eq!(parse_memory("123"), Some(123));
        assert_eq!(parse_memory("12x"), None);
        assert_eq!(parse_memory(""), None);
    }
}
