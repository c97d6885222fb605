use super::*;

#[test]
fn simplejwt_and_djoser_read_one_django_deployment_with_one_secret() {
    use tessera_dialects::config::LegacySecret;
    let mut s = Settings::default();
    s.dialects.simplejwt.legacy_secret = Some(LegacySecret::new("one"));
    s.dialects.djoser.legacy_secret = Some(LegacySecret::new("one"));
    assert!(s.check().is_ok());
    s.dialects.djoser.legacy_secret = Some(LegacySecret::new("another deployment's"));
    let err = s.check().err().map(|e| e.to_string()).unwrap_or_default();
    assert!(err.contains("dialects.djoser.legacy_secret"), "{err}");
    s.dialects.djoser.legacy_secret = None;
    assert!(s.check().is_ok(), "one face alone is fine");
}

#[test]
fn the_smtp_password_is_not_in_the_debug_output() {
    let e = EmailSettings { smtp_url: "smtps://mailer:hunter22@smtp.example.com:465".into(), ..EmailSettings::default() };
    let shown = format!("{e:?}");
    assert!(shown.contains("smtps://mailer@smtp.example.com:465") && !shown.contains("hunter22"), "{shown}");
}

#[test]
fn the_shipped_default_toml_matches_the_built_in_defaults() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../config/default.toml");
    let cfg = config::Config::builder().add_source(config::File::from(path.as_path())).build().unwrap();
    let from_file: Settings = cfg.try_deserialize().unwrap();
    assert_eq!(from_file, Settings::default());
}

#[test]
fn the_hash_priority_is_idle_or_low_and_nothing_else() {
    let parse = |toml: &str| {
        config::Config::builder()
            .add_source(config::File::from_str(toml, config::FileFormat::Toml))
            .build()
            .unwrap()
            .try_deserialize::<Settings>()
    };
    assert_eq!(parse("").unwrap().password.hash_priority, HashPriority::Idle);
    assert_eq!(parse("[password]\nhash_priority = \"low\"").unwrap().password.hash_priority, HashPriority::Low);
    let refused = parse("[password]\nhash_priority = \"realtime\"").unwrap_err().to_string();
    assert!(refused.contains("realtime") && refused.contains("password.hash_priority"), "{refused}");
}

#[test]
fn defaults_check_out() {
    let c = Settings::default().check().unwrap();
    assert_eq!(c.algorithm, Algorithm::ES256);
    assert!(c.profiles.contains_key("standard") && c.profiles.contains_key("extended"));
}

#[test]
fn bad_values_name_their_key() {
    let mut s = Settings::default();
    s.tokens.algorithm = "none".into();
    assert_eq!(s.check().unwrap_err().key, "tokens.algorithm");

    let mut s = Settings::default();
    s.profiles.insert("short".into(), ProfileSettings { access: "1h".into(), refresh: "10m".into() });
    assert_eq!(s.check().unwrap_err().key, "profiles.short");

    let mut s = Settings::default();
    s.profiles.insert("x".into(), ProfileSettings { access: "soon".into(), refresh: "10m".into() });
    assert_eq!(s.check().unwrap_err().key, "profiles.x.access");

    let mut s = Settings::default();
    s.oauth.default_profile = "nope".into();
    assert_eq!(s.check().unwrap_err().key, "oauth.default_profile");
}

#[test]
fn production_refuses_a_missing_master_key() {
    let mut s = Settings { environment: Environment::Production, ..Default::default() };
    assert_eq!(s.check().unwrap_err().key, "secrets.master_key");
    s.secrets.master_key = Some("c2VjcmV0".into());
    assert_eq!(s.check().unwrap_err().key, "dialects.medods.caller_key", "Medods' trusted-caller routes need a key");
    s.dialects.medods.caller_key = Some("a-long-enough-caller-key".into());
    // RFC 8414: the issuer is an https URL, taken from server.public_url
    assert_eq!(s.check().unwrap_err().key, "tokens.issuer");
    s.server.public_url = "https://auth.example.com/".into();
    assert!(s.check().is_ok());
    s.dialects.medods = MedodsSettings { enabled: false, caller_key: None, ..Default::default() };
    assert!(s.check().is_ok());
}

#[test]
fn the_issuer_is_the_public_url_unless_set() {
    let mut s = Settings::default();
    assert_eq!(s.issuer(), "tessera", "a development install with neither");
    s.server.public_url = "https://auth.example.com/".into();
    assert_eq!(s.issuer(), "https://auth.example.com");
    s.tokens.issuer = "https://id.example.com".into();
    assert_eq!(s.issuer(), "https://id.example.com");
    assert_eq!(s.tokens.accepted_issuers, ["tessera"], "tokens of the issuer before stay good until they expire");
    s.environment = Environment::Production;
    s.secrets.master_key = Some("c2VjcmV0".into());
    s.dialects.medods.enabled = false;
    assert!(s.check().is_ok());
    s.tokens.issuer = "tessera".into();
    assert_eq!(s.check().unwrap_err().key, "tokens.issuer");
}

#[test]
fn custom_profiles_are_parsed() {
    let mut s = Settings::default();
    s.profiles.insert("mobile".into(), ProfileSettings { access: "15m".into(), refresh: "30d".into() });
    let c = s.check().unwrap();
    let p = &c.profiles["mobile"];
    assert_eq!(p.access_ttl(), Duration::minutes(15));
    assert_eq!(p.refresh_ttl(), Duration::days(30));
}
