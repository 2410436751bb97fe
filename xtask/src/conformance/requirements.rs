//! Every numbered requirement of Modbus/TCP Security v36 (R-01 .. R-67) and
//! how mbaps stands with it. The wording is the paraphrase of
//! `docs/requirements-v36.md`; the statuses are ours.
//!
//! Evidence ids name what must have passed in this run:
//! - `binary::test`: a Rust test (`sessions` is `tests/sessions.rs` of
//!   mbaps-session; `conformance`, `loopback`, ... are the workspace's
//!   cross-crate tests in `tests/`; a crate name is its unit tests);
//! - `probe:CHECK`: a check of `mbaps conformance` against `mbaps server`;
//! - `openssl:CHECK`: OpenSSL's `s_client`/`s_server` as the peer;
//! - `pymodbus:CHECK`: pymodbus as the peer.

/// How mbaps stands with one requirement.
pub(crate) enum Status {
    /// Met, and shown by every piece of evidence named.
    Tested(&'static [&'static str]),
    /// Met, shown by the evidence, with something the reader must know.
    TestedWithNote(&'static [&'static str], &'static str),
    /// Not met; why, and what the evidence shows of the rest.
    NotMet(&'static str),
    /// Not a requirement on a client or server implementation, or not in
    /// v36; why.
    NotApplicable(&'static str),
}

/// One numbered requirement.
pub(crate) struct Requirement {
    /// 1 for R-01.
    pub(crate) number: u8,
    /// What it asks, in a few words.
    pub(crate) text: &'static str,
    pub(crate) status: Status,
}

const fn r(number: u8, text: &'static str, status: Status) -> Requirement {
    Requirement {
        number,
        text,
        status,
    }
}

use Status::{NotApplicable, NotMet, Tested, TestedWithNote};

const HANDSHAKE_ROLE: &str = "sessions::the_handshake_authenticates_the_role_over_tls13_and_tls12";
const NO_CLIENT_CERT: &str =
    "sessions::a_client_that_sends_no_certificate_gets_a_fatal_alert_and_no_session";
const UNKNOWN_CA: &str = "sessions::a_client_certificate_from_an_unknown_ca_is_refused";
const EXPIRED: &str = "sessions::expired_and_not_yet_valid_client_certificates_are_refused";
const REVOKED: &str = "sessions::a_revoked_client_certificate_is_refused_when_crls_are_configured";
const WRONG_NAME: &str =
    "sessions::a_client_that_checks_names_refuses_a_server_certificate_for_another_name";
const SERVER_UNKNOWN_CA: &str =
    "tokio_client::a_server_from_an_unknown_ca_is_refused_with_the_reason";
const MANDATORY_ECDSA: &str =
    "sessions::tls12_negotiates_the_mandatory_ecdhe_ecdsa_aes128_gcm_suite";
const DENIED_STAYS_UP: &str = "sessions::an_allowed_read_is_answered_and_a_denied_write_gets_exception_01_and_the_session_stays_up";
const LOOPBACK_ROLES: &str =
    "loopback::viewers_read_operators_write_and_a_viewers_write_is_denied_by_both_servers";
const VIEWER_FRAMES: &str = "authorize_frames::a_viewer_may_read_and_its_write_is_answered_illegal_function_with_the_header_echoed";
const RESUMED_ROLE: &str = "sessions::a_resumed_session_keeps_the_role_of_the_full_handshake";
const TWO_ROLES_HANDSHAKE: &str =
    "sessions::certificates_with_two_roles_or_a_role_of_the_wrong_type_fail_the_handshake";
const SUITES: &str = "conformance::r12_r38_r48_r50_to_r54_r66_only_registered_aead_suites_with_sha256_or_better_are_offered";
const CLIENT_HELLO: &str = "conformance::r59_r60_r63_r64_the_client_hello_offers_null_compression_renegotiation_indication_curves_and_point_formats";
const RESUMPTION: &str =
    "conformance::r42_r43_tls12_resumes_by_session_id_and_tls13_by_ticket_over_real_sockets";
const EVERY_FUNCTION: &str =
    "every_function::every_function_code_round_trips_through_every_pairing_of_adapters";
const ECHOED: &str = "sessions::the_unit_id_and_transaction_id_are_echoed";
const STANDARD_ROLES: &str = "role_certificates::each_standard_client_gives_its_role_or_its_error";
const MALFORMED_ROLES: &str =
    "role_certificates::malformed_role_values_in_real_certificates_are_refused_exactly";
const WHOLE_STRING: &str = "role_certificates::the_role_is_the_whole_string_compared_exactly";
const EXAMPLE_POLICY: &str =
    "policy_file::the_example_policy_lets_viewers_read_operators_write_and_no_role_nothing";
const CLI_TOGETHER: &str =
    "commands::certs_server_read_and_write_work_together_and_the_policy_holds";
const NULL_SUITES: &str = "rustls implements no NULL-cipher suite, so mbaps cannot offer or accept \
     one; a deployment that wants authentication without encryption cannot have it with mbaps \
     (every suite offered encrypts: `conformance::r12_...`)";
const MFL: &str = "rustls does not implement the max_fragment_length extension (RFC 6066), so \
     mbaps neither offers nor accepts it; the largest Modbus ADU (260 bytes) fits one record, \
     but a peer that insists on 512-byte fragments gets records up to 16 KiB";

/// R-01 .. R-67, in order, every number present.
pub(crate) const REQUIREMENTS: &[Requirement] = &[
    r(
        1,
        "TLS 1.2 or newer is the transport",
        Tested(&[
            HANDSHAKE_ROLE,
            "probe:tls12_mandatory_suite",
            "openssl:tls12_mutual_handshake",
        ]),
    ),
    r(
        2,
        "mutual client/server authentication",
        Tested(&[
            NO_CLIENT_CERT,
            UNKNOWN_CA,
            SERVER_UNKNOWN_CA,
            "probe:client_certificate_required",
            "openssl:no_client_certificate_refused",
        ]),
    ),
    r(
        3,
        "X.509v3 certificates (RFC 5280) as credentials",
        Tested(&[UNKNOWN_CA, EXPIRED, REVOKED, WRONG_NAME]),
    ),
    r(
        4,
        "authorization uses the role from the certificate extension",
        Tested(&[HANDSHAKE_ROLE, LOOPBACK_ROLES, VIEWER_FRAMES]),
    ),
    r(
        5,
        "the MBAP protocol is unchanged over TLS",
        Tested(&[
            EVERY_FUNCTION,
            ECHOED,
            "probe:mbap_echo",
            "probe:foreign_protocol_discarded",
            "pymodbus:client_every_function",
            "pymodbus:mbaps_client_against_pymodbus_server",
        ]),
    ),
    r(
        6,
        "mutual authentication in the handshake that creates the session",
        Tested(&[NO_CLIENT_CERT, RESUMED_ROLE]),
    ),
    r(
        7,
        "the server sends CertificateRequest",
        Tested(&["openssl:certificate_request_sent"]),
    ),
    r(
        8,
        "the client sends its Certificate when asked",
        Tested(&[
            "openssl:client_sends_its_chain",
            "pymodbus:mbaps_client_against_pymodbus_server",
        ]),
    ),
    r(
        9,
        "(not in v36)",
        NotApplicable("v36 has no R-09 (v21's: a client alerts when no CertificateRequest comes)"),
    ),
    r(
        10,
        "a client without a certificate gets a fatal alert, the connection closes",
        TestedWithNote(
            &[
                NO_CLIENT_CERT,
                "probe:client_certificate_required",
                "openssl:no_client_certificate_refused",
            ],
            "the client is shown to receive the alert on TLS 1.3 and TLS 1.2; rustls sends \
             certificate_required (116, defined by TLS 1.3) on TLS 1.2 too, where RFC 5246 \
             names handshake_failure: an alert a TLS 1.2 peer does not know is fatal to it all \
             the same (OpenSSL reports it as \"certificate required\")",
        ),
    ),
    r(
        11,
        "no resumption after a fatal alert (RFC 5246 7.2.2)",
        TestedWithNote(
            &[
                "conformance::r11_a_session_ended_by_a_fatal_alert_is_not_resumed",
                "conformance::r11_a_client_whose_session_a_fatal_alert_ended_does_not_resume_it",
            ],
            "both sides, TLS 1.2 and 1.3; rustls's session stores do not forget on their own, \
             so mbaps takes the sessions out itself (mbaps-session resumption.rs)",
        ),
    ),
    r(
        12,
        "cipher suites from the IANA registry",
        Tested(&[SUITES, "openssl:suites_outside_the_list_refused"]),
    ),
    r(
        13,
        "suites that work with X.509v3 certificates",
        Tested(&[SUITES, MANDATORY_ECDSA]),
    ),
    r(
        14,
        "with RSA keys, at least TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256",
        Tested(&[
            "openssl:rsa_server_negotiates_ecdhe_rsa_aes128_gcm",
            "openssl:rsa_client_certificate_accepted",
        ]),
    ),
    r(
        15,
        "(not in v36)",
        NotApplicable("v36 has no R-15 (v21's: the default suite TLS_RSA_WITH_AES_128_CBC_SHA256)"),
    ),
    r(
        16,
        "the server provides role-based authorization",
        Tested(&[
            DENIED_STAYS_UP,
            LOOPBACK_ROLES,
            "probe:role_denied",
            "pymodbus:gateway_denied_write_never_reaches_the_device",
        ]),
    ),
    r(
        17,
        "role-based authorization as section 8.4 says",
        Tested(&[DENIED_STAYS_UP, EXAMPLE_POLICY, STANDARD_ROLES]),
    ),
    r(
        18,
        "role extension, AuthZ algorithm and rules database",
        Tested(&[
            STANDARD_ROLES,
            EXAMPLE_POLICY,
            "authorize_frames::an_operator_may_read_and_write",
        ]),
    ),
    r(
        19,
        "the client is provisioned with its X.509v3 certificate",
        Tested(&[HANDSHAKE_ROLE, CLI_TOGETHER]),
    ),
    r(
        20,
        "the client certificate carries the role extension",
        TestedWithNote(
            &["pki::role_extension_occurrences", CLI_TOGETHER],
            "a duty of whoever issues certificates: `mbaps certs` issues every client \
         certificate with its role",
        ),
    ),
    r(
        21,
        "role OID 1.3.6.1.4.1.50316.802.1",
        Tested(&["pki::role_oid_der_matches_the_arcs", STANDARD_ROLES]),
    ),
    r(
        22,
        "the role is an ASN.1 UTF8String",
        Tested(&[MALFORMED_ROLES, TWO_ROLES_HANDSHAKE]),
    ),
    r(
        23,
        "no role: the NULL role goes to authorization",
        Tested(&[
            "sessions::a_client_without_a_role_is_authenticated_with_the_null_role_and_denied_by_default",
            "authorize_frames::a_client_without_a_role_may_do_nothing",
        ]),
    ),
    r(
        24,
        "the AuthZ algorithm is defined by the vendor",
        TestedWithNote(
            &[
                "policy_file::denials_say_what_was_missing_in_words",
                EXAMPLE_POLICY,
            ],
            "mbaps defines it: default deny, rules by function, unit and address range \
         (docs/policy.md)",
        ),
    ),
    r(
        25,
        "the rules database syntax is defined by the vendor",
        TestedWithNote(
            &[
                "policy_file::every_mistake_of_a_file_is_reported_not_only_the_first",
                "policy_file::wrong_types_syntax_errors_and_bad_role_names_are_located",
            ],
            "a TOML file, documented in docs/policy.md",
        ),
    ),
    r(
        26,
        "the rules database is loaded by the end user",
        Tested(&[CLI_TOGETHER, EXAMPLE_POLICY]),
    ),
    r(
        27,
        "the rules database is configurable by the end user",
        Tested(&["policy_file::units_and_address_ranges_restrict_a_rule"]),
    ),
    r(
        28,
        "no unchangeable hard-coded default roles",
        Tested(&["policy_file::an_empty_policy_allows_nothing"]),
    ),
    r(
        29,
        "role values match the vendor's rules design",
        NotApplicable(
            "a duty of whoever issues certificates and writes the policy; mbaps compares roles \
         exactly (R-65) and refuses badly formed role names in a policy",
        ),
    ),
    r(
        30,
        "the server extracts the role from the client certificate",
        Tested(&[HANDSHAKE_ROLE, STANDARD_ROLES]),
    ),
    r(
        31,
        "a request refused by authorization gets exception 01",
        Tested(&[DENIED_STAYS_UP, VIEWER_FRAMES, "probe:role_denied"]),
    ),
    r(
        32,
        "TLS 1.2 or better",
        Tested(&[
            HANDSHAKE_ROLE,
            "probe:tls12_mandatory_suite",
            "openssl:tls12_mutual_handshake",
        ]),
    ),
    r(
        33,
        "conformance to RFC 5246",
        TestedWithNote(
            &[
                "openssl:tls12_mutual_handshake",
                "openssl:client_sends_its_chain",
                "pymodbus:client_every_function",
                "pymodbus:mbaps_client_against_pymodbus_server",
            ],
            "the TLS 1.2 state machine is rustls's; mbaps shows it interoperates with OpenSSL \
         (s_client, s_server, Python's ssl) both ways",
        ),
    ),
    r(
        34,
        "never TLS 1.1, 1.0 or SSL 3.0",
        Tested(&[
            "tls_floor::a_real_tls11_client_hello_is_refused_with_a_fatal_alert",
            "tls_floor::a_tls11_client_hello_with_modern_extensions_is_refused_for_its_version",
            "probe:ssl30_refused",
            "probe:tls10_refused",
            "probe:tls11_refused",
            "openssl:tls10_refused",
            "openssl:tls11_refused",
            "openssl:client_refuses_a_tls11_server",
        ]),
    ),
    r(35, "never SSL 2.0", Tested(&["probe:ssl20_refused"])),
    r(
        36,
        "a counter-mode (GCM) suite",
        TestedWithNote(
            &[
                MANDATORY_ECDSA,
                "openssl:rsa_server_negotiates_ecdhe_rsa_aes128_gcm",
            ],
            "met with TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 (one of the spec's examples); the \
         other example, static-RSA TLS_RSA_WITH_AES_128_GCM_SHA256, is not offered: rustls \
         implements no static-RSA key exchange",
        ),
    ),
    r(
        37,
        "never TLS_NULL_WITH_NULL_NULL",
        Tested(&["probe:null_suite_refused", SUITES]),
    ),
    r(
        38,
        "a negotiated suite is in the IANA registry",
        Tested(&[SUITES, "openssl:suites_outside_the_list_refused"]),
    ),
    r(
        39,
        "RSA-based key exchange as the mandatory suite sets",
        TestedWithNote(
            &["openssl:rsa_server_negotiates_ecdhe_rsa_aes128_gcm"],
            "the mandatory RSA suite (R-14) is ECDHE key exchange signed with RSA, and works; \
         static-RSA key exchange is not implemented by rustls",
        ),
    ),
    r(
        40,
        "ECC-based key exchange",
        Tested(&[MANDATORY_ECDSA, "openssl:p256_group"]),
    ),
    r(
        41,
        "the mutual-authentication handshake",
        Tested(&[
            HANDSHAKE_ROLE,
            NO_CLIENT_CERT,
            "openssl:tls12_mutual_handshake",
        ]),
    ),
    r(
        42,
        "resumed-session handshakes",
        Tested(&[RESUMPTION, RESUMED_ROLE]),
    ),
    r(
        43,
        "session-ticket resumption",
        TestedWithNote(
            &[RESUMPTION],
            "TLS 1.3 resumes by ticket (stateful: the ticket names a session the server keeps, \
             R-11 forgets it after a fatal alert); TLS 1.2 resumes by session id, which the \
             specification prefers, and TLS 1.2 session tickets (RFC 5077) are not offered, \
             since they MAY be",
        ),
    ),
    r(
        44,
        "the server rejects a client that answers without a certificate",
        Tested(&[
            NO_CLIENT_CERT,
            "probe:client_certificate_required",
            "openssl:no_client_certificate_refused",
        ]),
    ),
    r(
        45,
        "CA-signed certificates",
        Tested(&[
            "pki::chains_are_leaf_first_and_end_at_their_root",
            UNKNOWN_CA,
        ]),
    ),
    r(
        46,
        "the whole chain down to the root CA is sent",
        TestedWithNote(
            &[
                "conformance::r46_each_side_sends_its_whole_chain_down_to_the_root",
                "probe:chain_sent",
                "openssl:server_sends_its_chain",
                "openssl:client_sends_its_chain",
            ],
            "each side sends the chain it is configured with, root included; `mbaps certs` \
             writes chains down to the root, as the requirement reads (TLS 1.3 would let the \
             root be left out; mbaps does not leave out what it is given)",
        ),
    ),
    r(
        47,
        "certificates conform to RFC 5280",
        Tested(&[
            EXPIRED,
            REVOKED,
            UNKNOWN_CA,
            WRONG_NAME,
            "pki::names_and_usages",
        ]),
    ),
    r(
        48,
        "if encryption is required, a suite with encryption",
        Tested(&[SUITES]),
    ),
    r(
        49,
        "if it is not, a suite with NULL bulk encryption",
        NotMet(NULL_SUITES),
    ),
    r(
        50,
        "no HMAC-MD5",
        Tested(&[SUITES, "openssl:suites_outside_the_list_refused"]),
    ),
    r(
        51,
        "no HMAC-SHA-1",
        Tested(&[SUITES, "openssl:suites_outside_the_list_refused"]),
    ),
    r(
        52,
        "HMAC-SHA-256 provided",
        Tested(&[SUITES, MANDATORY_ECDSA]),
    ),
    r(
        53,
        "no NULL HMAC",
        Tested(&[SUITES, "probe:null_suite_refused"]),
    ),
    r(54, "no HMAC-SHA-1 in the PRF", Tested(&[SUITES])),
    r(
        55,
        "HMAC-SHA-256 for the PRF",
        Tested(&[SUITES, MANDATORY_ECDSA]),
    ),
    r(
        56,
        "cryptography checked against import/export rules",
        NotApplicable(
            "a duty of whoever ships a device; mbaps uses rustls with ring (AES-GCM, \
         ChaCha20-Poly1305, ECDHE, ECDSA, RSA)",
        ),
    ),
    r(
        57,
        "the Max Fragment Length extension (RFC 6066)",
        NotMet(MFL),
    ),
    r(
        58,
        "a 512-byte maximum fragment length can be negotiated",
        NotMet(MFL),
    ),
    r(
        59,
        "CompressionMethod NULL in the ClientHello",
        Tested(&[CLIENT_HELLO, "openssl:no_compression"]),
    ),
    r(
        60,
        "the renegotiation indication extension (RFC 5746)",
        TestedWithNote(
            &[CLIENT_HELLO, "openssl:secure_renegotiation"],
            "the client signals it with TLS_EMPTY_RENEGOTIATION_INFO_SCSV, which RFC 5746 3.4 \
         allows; rustls never renegotiates",
        ),
    ),
    r(
        61,
        "with ECC, at least NIST P-256",
        Tested(&["openssl:p256_group", MANDATORY_ECDSA]),
    ),
    r(
        62,
        "with ECC, at least TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256",
        Tested(&[
            MANDATORY_ECDSA,
            "probe:tls12_mandatory_suite",
            "openssl:tls12_mutual_handshake",
        ]),
    ),
    r(
        63,
        "with ECC, supported curves in the ClientHello",
        Tested(&[CLIENT_HELLO]),
    ),
    r(
        64,
        "with ECC, point formats in the ClientHello",
        Tested(&[CLIENT_HELLO]),
    ),
    r(
        65,
        "one role per certificate, the whole string is the role",
        Tested(&[WHOLE_STRING, TWO_ROLES_HANDSHAKE]),
    ),
    r(
        66,
        "clients offering NULL suites put them last",
        TestedWithNote(&[SUITES], "mbaps offers no NULL suite at all"),
    ),
    r(
        67,
        "servers can enable TLS_RSA_WITH_NULL_SHA256",
        NotMet(NULL_SUITES),
    ),
];
