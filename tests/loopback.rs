//! A real server on 127.0.0.1 and real clients, with real certificates and
//! the example policy: allowed and denied requests, and the audit log.

mod common;

use common::{
    Adapter, PAIRINGS, client_config, localhost, log_sink, pki, role_config, server_config, start,
};
use mbaps_admission::SessionLog;
use mbaps_codec::ExceptionCode;
use mbaps_session::{ClientError, RequestRecord, ServerEvent, Verdict};
use mbaps_simulator::{RegisterMap, Tables};
use mbaps_std::Calls;
use mbaps_std::StdClient;

#[test]
fn viewers_read_operators_write_and_a_viewers_write_is_denied_by_both_servers() {
    for (server, _) in PAIRINGS
        .iter()
        .filter(|(_, client)| *client == Adapter::Std)
    {
        roles_over_real_sockets(*server);
    }
}

fn roles_over_real_sockets(server: Adapter) {
    let pki = pki();
    let (log, sink) = log_sink();
    let running = start(
        server,
        server_config(pki),
        RegisterMap::new(Tables::preset()),
        sink,
    );
    let address = running.address;
    let client = |name: &str| StdClient::connect(address, &role_config(name), localhost()).unwrap();

    let mut viewer = client("viewer");
    assert_eq!(
        viewer.read_holding_registers(1, 100, 3).unwrap(),
        [100, 101, 102]
    );
    match viewer.write_single_register(1, 100, 7) {
        Err(ClientError::Exception(ExceptionCode::IllegalFunction)) => {}
        other => panic!("{other:?}"),
    }
    let mut operator = client("operator");
    operator.write_single_register(1, 100, 7).unwrap();
    operator.write_multiple_registers(1, 101, &[8, 9]).unwrap();
    assert_eq!(viewer.read_holding_registers(1, 100, 3).unwrap(), [7, 8, 9]);
    viewer.close().unwrap();
    operator.close().unwrap();

    // A client from another CA does not get in.
    let config = client_config(pki, &pki.untrusted_client);
    let refused = StdClient::connect(address, &config, localhost())
        .and_then(|mut c| c.read_holding_registers(1, 0, 1).map(|_| ()));
    assert!(refused.is_err());

    // The server logs the refusal as the handshake fails on its side.
    common::wait_for_log(&log, |e| matches!(e, SessionLog::Failed { .. }));
    running.stop();
    let log = log.lock().unwrap();
    let roles: Vec<String> = log
        .iter()
        .filter_map(|e| match e {
            SessionLog::Event {
                event: ServerEvent::Authenticated { role, .. },
                ..
            } => role.as_ref().map(|r| r.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(roles, ["viewer", "operator"]);
    assert!(log.iter().any(|e| matches!(
        e,
        SessionLog::Event {
            event: ServerEvent::Answered(RequestRecord {
                function: 0x06,
                verdict: Verdict::Denied(_),
                ..
            }),
            ..
        }
    )));
    assert!(
        log.iter().any(|e| matches!(e, SessionLog::Failed { .. })),
        "the untrusted client's failure is logged"
    );
}
