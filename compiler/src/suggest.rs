//! "Did you mean" suggestions: the closest plausible candidate to a misspelt word.

/// The candidate closest to `word`, if it is close enough to be a plausible typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let word_l = word.to_lowercase();
    candidates
        .into_iter()
        .map(|c| (strsim::damerau_levenshtein(&word_l, &c.to_lowercase()), c))
        .filter(|&(d, c)| d <= (c.len().max(word.len()) / 3).max(1))
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_typos_but_not_unrelated_words() {
        assert_eq!(closest("sigma_lbs", ["sigma_lsb", "scaling"]), Some("sigma_lsb"));
        assert_eq!(closest("hardwre", ["hardware", "network"]), Some("hardware"));
        assert_eq!(closest("banana", ["hardware", "network"]), None);
        assert_eq!(closest("Dense", ["dense"]), Some("dense"));
    }
}
