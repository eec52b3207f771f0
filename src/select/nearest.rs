//! Great-circle distance, for the `nearest` policy.

/// Mean Earth radius in km (IUGG).
const EARTH_RADIUS_KM: f64 = 6371.0088;

/// Haversine distance in km between two (latitude, longitude) points in degrees.
pub fn distance_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1) = (a.0.to_radians(), a.1.to_radians());
    let (la2, lo2) = (b.0.to_radians(), b.1.to_radians());
    let h = ((la2 - la1) / 2.0).sin().powi(2) + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_KM * h.sqrt().min(1.0).asin()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_distances() {
        let paris = (48.8566, 2.3522);
        let london = (51.5074, -0.1278);
        let d = distance_km(paris, london);
        assert!((340.0..350.0).contains(&d), "{d}");
        assert_eq!(distance_km(paris, paris), 0.0);
        let antipode = distance_km((0.0, 0.0), (0.0, 180.0));
        assert!((antipode - std::f64::consts::PI * EARTH_RADIUS_KM).abs() < 1.0);
    }
}
