use std::collections::BTreeSet;

use super::*;
use crate::admin::DeviceView;
use crate::model::{CheckIn, DeviceState, HttpCredential, Role};
use crate::store::Store;

const A: Mac = Mac::from_octets([0, 0x11, 0x22, 0x33, 0x44, 0x55]);
const B: Mac = Mac::from_octets([0, 0x11, 0x22, 0x33, 0x44, 0x56]);

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("db")).unwrap();
    for name in ["hq", "branch"] {
        let site = crate::model::Site {
            name: name.into(),
            ..Default::default()
        };
        store.create_site(&site).unwrap();
    }
    (dir, store)
}

fn admin() -> Principal {
    Principal {
        user: "admin".into(),
        role: Role::Administrator,
        sites: BTreeSet::new(),
        box_token: true,
    }
}

fn import(store: &Store, format: Format, body: &[u8]) -> ImportReport {
    run(store, &admin(), format, body, false, false).unwrap().0
}

fn check(format: Format, body: &[u8]) -> ImportReport {
    let (_dir, store) = store();
    run(&store, &admin(), format, body, true, false).unwrap().0
}

fn lines(report: &ImportReport) -> Vec<usize> {
    report.errors.iter().map(|e| e.line).collect()
}

/// A device with what no export carries: a secret, the cloud's parameters, a lifecycle state,
/// an HTTP credential and a check-in.
fn stored(store: &Store, mac: Mac) -> Device {
    let mut d = Device::new(mac);
    d.model = "J179".into();
    d.site = "hq".into();
    d.label = "desk".into();
    d.params.insert("SIPDOMAIN".into(), "old.example".into());
    d.params.insert("VLAN".into(), "20".into());
    d.cloud_params
        .insert("SIPPROXY".into(), "cloud.example".into());
    d.secrets.insert("SIP_PASSWORD".into(), "kept".into());
    d.state = DeviceState::Deactivated;
    d.allow_http_auth = true;
    d.http_credential = Some(HttpCredential {
        username: "desk".into(),
        password: "pw".into(),
    });
    d.checkin = Some(CheckIn {
        last_seen: 1_700_000_000,
        firmware: "4.1.3".into(),
        ..Default::default()
    });
    store.create_device(d).unwrap()
}

fn get(store: &Store, mac: Mac) -> Device {
    store.get_device(mac).unwrap().unwrap()
}

#[test]
fn csv_rows_and_errors_with_lines() {
    let (_dir, store) = store();
    let report = import(
        &store,
        Format::Csv,
        b"mac,model,site,SIPDOMAIN,secret:SIP_PASSWORD\n\
          00:11:22:33:44:55,J179,hq,example.com,pw1\n\
          not-a-mac,J179,hq,,\n\
          001122334456,T46S,hq,,\"pw, with comma\"\n\
          00-11-22-33-44-55,J169,hq,,\n",
    );
    assert_eq!((report.rows, report.created, report.bad_rows), (4, 2, 2));
    assert_eq!(lines(&report), [3, 5], "{:?}", report.errors);
    assert!(report.errors[1].error.contains("already on line 2"));
    assert!(!report.applied);
    assert!(store.get_device(A).unwrap().is_none(), "nothing applied");

    let report = import(
        &store,
        Format::Csv,
        b"mac,model,site,SIPDOMAIN,secret:SIP_PASSWORD\n\
          00:11:22:33:44:55,J179,hq,example.com,pw1\n\
          001122334456,T46S,hq,,\"pw, with comma\"\n",
    );
    assert!(report.applied, "{:?}", report.errors);
    assert_eq!(get(&store, A).params["SIPDOMAIN"], "example.com");
    assert_eq!(get(&store, A).secrets["SIP_PASSWORD"], "pw1");
    assert_eq!(get(&store, B).secrets["SIP_PASSWORD"], "pw, with comma");
    assert!(get(&store, B).params.is_empty(), "empty cells set nothing");
}

#[test]
fn bad_headers_and_values() {
    let r = check(Format::Csv, b"model,mac\nJ179,001122334455\n");
    assert_eq!(lines(&r), [1]);
    let r = check(Format::Csv, b"mac,site,site\n001122334455,a,b\n");
    assert!(r.errors[0].error.contains("twice"));
    // A bad column is one error of the header, not one on every row.
    let r = check(
        Format::Csv,
        b"mac,BAD NAME\n001122334455,x\n001122334456,y\n",
    );
    assert_eq!(lines(&r), [1], "{:?}", r.errors);
    assert!(
        r.errors[0].error.contains("parameter name"),
        "{:?}",
        r.errors
    );
    let r = check(
        Format::Csv,
        b"mac,model\n001122334455,J179,extra\n001122334456\n",
    );
    assert_eq!(lines(&r), [2, 3], "{:?}", r.errors);
    let r = check(
        Format::Json,
        br#"[{"mac":"001122334455"},{"mac":"x"},{"mac":"001122334456","colour":1}]"#,
    );
    assert_eq!(r.bad_rows, 2);
    assert!(
        r.errors[0].error.starts_with("element 2: mac: "),
        "{:?}",
        r.errors
    );
    assert!(
        r.errors[1].error.contains("unknown field `colour`"),
        "{:?}",
        r.errors
    );
}

#[test]
fn blank_lines_crlf_and_a_byte_order_mark() {
    let r = check(
        Format::Csv,
        b"\xEF\xBB\xBFmac,label\r\n\r\n001122334455,a\r\n\r\n\r\nnot-a-mac,b\r\n",
    );
    assert_eq!((r.rows, r.created), (2, 1));
    assert_eq!(lines(&r), [6], "{:?}", r.errors);
}

/// A JSON file saved with a byte order mark (as Windows tools do) reads as one without, lines
/// counted alike; it was refused as "expected value at line 1 column 1".
#[test]
fn a_json_file_with_a_byte_order_mark_imports() {
    let r = check(
        Format::Json,
        b"\xEF\xBB\xBF[\n{\"mac\": \"001122334455\"},\n{\"mac\": \"not-a-mac\"}\n]",
    );
    assert_eq!((r.rows, r.created), (2, 1), "{:?}", r.errors);
    assert_eq!(lines(&r), [3], "{:?}", r.errors);
}

#[test]
fn a_csv_row_changes_only_its_columns_of_a_device_that_exists() {
    let (_dir, store) = store();
    let before = stored(&store, A);
    let report = import(
        &store,
        Format::Csv,
        b"mac,label,SIPDOMAIN,VLAN,secret:SIP_PASSWORD,secret:ADMIN_PIN\n\
          001122334455,lobby,new.example,,,1234\n",
    );
    assert!(report.applied, "{:?}", report.errors);
    let d = get(&store, A);
    assert_eq!((d.label.as_str(), d.model.as_str()), ("lobby", "J179"));
    assert_eq!(d.site, "hq", "no site column: the site is kept");
    assert_eq!(d.params["SIPDOMAIN"], "new.example");
    assert!(!d.params.contains_key("VLAN"), "an empty cell removes");
    assert_eq!(
        d.secrets["SIP_PASSWORD"], "kept",
        "an empty secret cell keeps"
    );
    assert_eq!(d.secrets["ADMIN_PIN"], "1234");
    assert_eq!(d.cloud_params, before.cloud_params);
    assert_eq!(
        (d.state, d.checkin, d.created),
        (before.state, before.checkin, before.created)
    );
}

/// A blank left in a spreadsheet's `site` cell took the device out of its site (its settings,
/// its operators' reach): an empty cell of a fixed column keeps the field, `""` empties it.
#[test]
fn an_empty_fixed_cell_keeps_the_field_and_two_quotes_empty_it() {
    let (_dir, store) = store();
    stored(&store, A);
    let mut b = Device::new(B);
    b.model = "J179".into();
    b.site = "hq".into();
    b.label = "desk".into();
    store.create_device(b).unwrap();
    let report = import(
        &store,
        Format::Csv,
        b"mac,model,serial,site,group,label\n\
          001122334455,,,,,\n\
          001122334456,J189,,\"\"\"\"\"\",,\"\"\"\"\"\"\n",
    );
    assert!(report.applied, "{:?}", report.errors);
    let a = get(&store, A);
    assert_eq!(
        (a.model.as_str(), a.site.as_str(), a.label.as_str()),
        ("J179", "hq", "desk")
    );
    assert_eq!((report.updated, report.unchanged), (1, 1));
    let b = get(&store, B);
    assert_eq!(
        (b.model.as_str(), b.site.as_str(), b.label.as_str()),
        ("J189", "", "")
    );
}

/// A parameter cell `(not exported)` (an export's mark of a value with a login) keeps the
/// device's value, and is reported for a device that has none, as a secret's is.
#[test]
fn a_parameter_marked_not_exported_keeps_the_value() {
    let (_dir, store) = store();
    let mut a = Device::new(A);
    a.params.insert(
        "yealink:static.auto_provision.server.url".into(),
        "https://prov:pw@prov.example/".into(),
    );
    store.create_device(a).unwrap();
    let report = import(
        &store,
        Format::Csv,
        b"mac,yealink:static.auto_provision.server.url\n\
          001122334455,(not exported)\n\
          001122334456,(not exported)\n",
    );
    assert!(report.applied, "{:?}", report.errors);
    assert_eq!(
        get(&store, A).params["yealink:static.auto_provision.server.url"],
        "https://prov:pw@prov.example/"
    );
    assert!(get(&store, B).params.is_empty());
    assert_eq!(report.unchanged, 1);
    assert_eq!(
        report.secrets_missing,
        vec![MissingSecrets {
            line: 3,
            mac: B,
            names: vec!["yealink:static.auto_provision.server.url".into()],
        }]
    );
}

/// An export writes `(not exported)` for a secret a device has and leaves the cell empty for
/// one it has not. Neither sets anything; only a marked cell names the secret, so only it is
/// counted, and reported when the device lacks that secret.
#[test]
fn only_a_marked_secret_cell_names_the_secret() {
    let (_dir, store) = store();
    stored(&store, A);
    let report = import(
        &store,
        Format::Csv,
        b"mac,secret:SIP_PASSWORD,secret:ADMIN_PIN,secret:admin.password\n\
          001122334455,(not exported),,(not exported)\n",
    );
    assert!(report.applied, "{:?}", report.errors);
    let d = get(&store, A);
    assert_eq!(d.secrets.len(), 1, "{:?}", d.secrets.keys());
    assert_eq!(d.secrets["SIP_PASSWORD"], "kept");
    assert_eq!(report.secrets_without_values, 2);
    assert_eq!(report.devices_missing_secrets, 1);
    assert_eq!(
        report.secrets_missing,
        vec![MissingSecrets {
            line: 2,
            mac: A,
            names: vec!["admin.password".into()],
        }]
    );
}

#[test]
fn a_json_element_changes_only_its_keys_of_a_device_that_exists() {
    let (_dir, store) = store();
    stored(&store, A);
    stored(&store, B);
    let report = import(
        &store,
        Format::Json,
        br#"[{"mac":"001122334455","site":"branch","params":{"VLAN":"30"}},
             {"mac":"001122334456","state":"active","secrets":{"ADMIN_PIN":"9"},
              "http_credential":null}]"#,
    );
    assert!(report.applied, "{:?}", report.errors);
    let (a, b) = (get(&store, A), get(&store, B));
    assert_eq!((a.site.as_str(), a.label.as_str()), ("branch", "desk"));
    assert_eq!(a.params["VLAN"], "30");
    assert_eq!(a.params["SIPDOMAIN"], "old.example", "names merge");
    assert_eq!(a.state, DeviceState::Deactivated);
    assert_eq!(a.secrets["SIP_PASSWORD"], "kept");
    assert!(a.http_credential.is_some(), "not given: kept");
    assert_eq!(b.state, DeviceState::Active, "given");
    assert_eq!(b.secrets.len(), 2);
    assert_eq!(b.http_credential, None, "null removes");
}

#[test]
fn a_json_document_that_is_not_an_array_names_its_line() {
    let r = check(Format::Json, b"\n\n{\"mac\": \"001122334455\"}");
    assert_eq!(lines(&r), [3], "{:?}", r.errors);
    assert!(
        r.errors[0].error.starts_with("not a JSON array"),
        "{:?}",
        r.errors
    );
}

#[test]
fn json_errors_name_the_element_and_the_field() {
    let r = check(
        Format::Json,
        br#"[{"mac":"001122334455","params":{"SIP_DOMAIN":1}},{"mac":"nope"},
             {"mac":"001122334456","state":"sideways"},"a string"]"#,
    );
    let errors: Vec<&str> = r.errors.iter().map(|e| e.error.as_str()).collect();
    assert!(
        errors[0].starts_with("element 1: params.SIP_DOMAIN: "),
        "{errors:?}"
    );
    assert!(errors[1].starts_with("element 2: mac: "), "{errors:?}");
    assert!(errors[2].starts_with("element 3: state: "), "{errors:?}");
    assert!(
        errors[3].starts_with("element 4: invalid type"),
        "{errors:?}"
    );
    assert_eq!(lines(&r), [1, 1, 2, 2]);
}

/// A pretty-printed file: the error is on the line of the bad value, not the element's
/// position in the array.
#[test]
fn json_errors_are_on_the_line_of_the_text() {
    let body = br#"[
  {
    "mac": "001122334455",
    "label": "Desk 1"
  },
  {
    "label": "Desk 2",
    "mac": "not-a-mac"
  },
  {
    "mac": "001122334456",
    "params": {
      "VLAN": "20",
      "SIPDOMAIN": 7
    }
  },
  {
    "mac": "001122334457",
    "params": {"BAD NAME": "x"}
  }
]"#;
    let r = check(Format::Json, body);
    assert_eq!(lines(&r), [8, 14, 17], "{:?}", r.errors);
    assert!(
        r.errors[0].error.starts_with("element 2: mac: "),
        "{:?}",
        r.errors
    );
    assert!(
        r.errors[1]
            .error
            .starts_with("element 3: params.SIPDOMAIN: "),
        "{:?}",
        r.errors
    );
    assert!(
        r.errors[2].error.starts_with("element 4: params: "),
        "{:?}",
        r.errors
    );
}

#[test]
fn a_json_key_given_twice_is_refused() {
    let r = check(
        Format::Json,
        b"[{\"mac\":\"001122334455\"},\n {\"mac\":\"001122334456\",\n  \"label\":\"a\",\n  \"label\":\"b\"}]",
    );
    assert_eq!(lines(&r), [4], "{:?}", r.errors);
    assert!(
        r.errors[0]
            .error
            .starts_with("element 2: duplicate field `label`"),
        "{:?}",
        r.errors
    );
}

/// What `GET /devices/export?format=json` gives, imported again, gives back the same devices.
#[test]
fn a_json_export_imports_again_to_the_same_devices() {
    let (_dir, store) = store();
    let before = stored(&store, A);
    let mut plain = Device::new(B);
    plain.params.insert("SIPDOMAIN".into(), String::new());
    store.create_device(plain).unwrap();
    let views: Vec<DeviceView> = store
        .list_devices()
        .unwrap()
        .into_iter()
        .map(DeviceView::from)
        .collect();
    let export = serde_json::to_vec_pretty(&views).unwrap();
    let report = import(&store, Format::Json, &export);
    assert!(report.applied, "{:?}", report.errors);
    assert_eq!(
        (report.created, report.updated, report.unchanged),
        (0, 0, 2),
        "nothing changed, and the report says so"
    );
    assert_eq!(get(&store, A), before, "not even its updated time");
    assert_eq!(get(&store, B).params["SIPDOMAIN"], "");

    // Into an empty inventory: the same devices, without what an export does not carry.
    let (_dir, empty) = self::store();
    assert!(import(&empty, Format::Json, &export).applied);
    let d = get(&empty, A);
    assert_eq!((&d.params, d.state), (&before.params, before.state));
    assert!(d.secrets.is_empty() && d.cloud_params.is_empty() && d.checkin.is_none());

    // The view's fields are accepted; any other is still refused.
    let r = check(
        Format::Json,
        br#"[{"mac":"001122334455","checkin":null,"colour":1}]"#,
    );
    assert!(
        r.errors[0].error.contains("unknown field `colour`"),
        "{:?}",
        r.errors
    );
}

#[test]
fn a_csv_export_imports_again_to_the_same_parameters() {
    let (_dir, store) = store();
    let mut d = Device::new(A);
    d.params.insert("SIPDOMAIN".into(), String::new());
    d.params.insert("VLAN".into(), "20".into());
    store.create_device(d).unwrap();
    store.create_device(Device::new(B)).unwrap();
    let r = import(
        &store,
        Format::Csv,
        b"mac,SIPDOMAIN,VLAN\n001122334455,\"\"\"\"\"\",20\n001122334456,,\n",
    );
    assert!(r.applied, "{:?}", r.errors);
    assert_eq!(get(&store, A).params["SIPDOMAIN"], "", "set to empty: kept");
    assert!(
        get(&store, B).params.is_empty(),
        "an empty cell sets nothing"
    );
}

/// A CSV export carries each device's state: imported into an empty inventory, a deactivated
/// device stays deactivated (it came back active), and into the inventory it came from it
/// changes nothing.
#[test]
fn a_csv_export_keeps_each_device_state() {
    let (_dir, store) = store();
    let a = stored(&store, A);
    let mut b = Device::new(B);
    b.state = DeviceState::Inactive;
    store.create_device(b).unwrap();
    let text = export::csv(&store.list_devices().unwrap()).unwrap();

    let (_dir, empty) = self::store();
    let report = import(&empty, Format::Csv, &text);
    assert!(report.applied, "{:?}", report.errors);
    let back = get(&empty, A);
    assert_eq!(back.state, DeviceState::Deactivated);
    assert_eq!(back.params, a.params);
    assert_eq!(get(&empty, B).state, DeviceState::Inactive);
    let again = import(&store, Format::Csv, &text);
    assert_eq!(
        (again.updated, again.unchanged),
        (0, 2),
        "{:?}",
        again.errors
    );
}

/// A fixed column cannot be a parameter's: no write path takes a parameter of such a name, so
/// a `state` column is always the device's state.
#[test]
fn no_parameter_is_named_like_a_fixed_column() {
    for name in csv_rows::FIXED {
        assert!(
            crate::admin::settings::check_param("params", name, Some("1")).is_err(),
            "{name}"
        );
    }
}

/// A state cell names a state as the API does; any other value refuses the whole file, naming
/// the line and the column. An empty cell keeps a device's state, and a file without the
/// column (as exported before it was added) keeps every state.
#[test]
fn a_csv_state_is_checked_and_an_empty_one_kept() {
    let (_dir, store) = store();
    stored(&store, A);
    let r = import(
        &store,
        Format::Csv,
        b"mac,label,state
001122334455,x,active
001122334456,y,Disabled
",
    );
    assert!(!r.applied);
    assert_eq!(lines(&r), [3], "{:?}", r.errors);
    assert!(
        r.errors[0]
            .error
            .starts_with("state (column 3): \"Disabled\" is not a device state (active, "),
        "{:?}",
        r.errors
    );
    assert_eq!(
        get(&store, A).state,
        DeviceState::Deactivated,
        "nothing applied"
    );
    assert_eq!(get(&store, A).label, "desk", "nothing applied");

    let r = import(
        &store,
        Format::Csv,
        b"mac,label,state
001122334455,x,
001122334456,y,
",
    );
    assert!(r.applied, "{:?}", r.errors);
    assert_eq!(
        get(&store, A).state,
        DeviceState::Deactivated,
        "empty: kept"
    );
    assert_eq!(
        get(&store, B).state,
        DeviceState::Active,
        "empty: a new one is active"
    );
    let r = import(
        &store,
        Format::Csv,
        b"mac,label
001122334455,z
",
    );
    assert!(r.applied, "{:?}", r.errors);
    assert_eq!(
        get(&store, A).state,
        DeviceState::Deactivated,
        "no column: kept"
    );
}

#[test]
fn the_secret_prefix_is_no_parameter_name() {
    let r = check(
        Format::Json,
        br#"[{"mac":"001122334455","params":{"secret:ADMIN_PIN":"1234"}}]"#,
    );
    assert!(
        r.errors[0].error.contains("\"secret:ADMIN_PIN\""),
        "{:?}",
        r.errors
    );
    assert!(r.errors[0].error.contains("reserved"), "{:?}", r.errors);
    let r = check(Format::Csv, b"mac,secret:secret:PIN\n001122334455,1\n");
    assert_eq!(lines(&r), [1], "{:?}", r.errors);
}

#[test]
fn outer_spaces_are_refused_not_trimmed() {
    let r = check(
        Format::Csv,
        b"mac,model,label\n001122334455,J179 ,Desk\n001122334456,J179,\" Desk 1 \"\n",
    );
    let errors: Vec<(usize, &str)> = r
        .errors
        .iter()
        .map(|e| (e.line, e.error.as_str()))
        .collect();
    assert_eq!(
        errors,
        [
            (2, "model: no spaces at the start or end"),
            (3, "label: no spaces at the start or end")
        ]
    );
}

#[test]
fn a_site_as_long_as_a_layer_name_is_taken_and_a_longer_one_refused() {
    let site = |n: usize| "s".repeat(n);
    let body = format!(
        "mac,site\n001122334455,{}\n001122334456,{}\n",
        site(crate::model::MAX_NAME),
        site(crate::model::MAX_NAME + 1)
    );
    let (_dir, store) = store();
    let r = run(&store, &admin(), Format::Csv, body.as_bytes(), true, true)
        .unwrap()
        .0;
    assert_eq!(lines(&r), [3], "{:?}", r.errors);
    assert!(crate::model::Layer::parse(&format!("site:{}", site(crate::model::MAX_NAME))).is_ok());
}

#[test]
fn a_report_lists_at_most_max_errors_and_counts_the_rest() {
    let n = MAX_ERRORS + 4000;
    let mut body = b"[0".to_vec();
    body.extend(b",0".repeat(n - 1));
    body.push(b']');
    let r = check(Format::Json, &body);
    assert_eq!((r.rows, r.bad_rows, r.errors.len()), (n, n, MAX_ERRORS + 1));
    assert_eq!(
        r.errors[MAX_ERRORS].error,
        "…and 4000 more bad rows from this line on, not listed"
    );

    let mut body = b"mac\n".to_vec();
    body.extend(b"x\n".repeat(n));
    let r = check(Format::Csv, &body);
    assert_eq!((r.bad_rows, r.errors.len()), (n, MAX_ERRORS + 1));
    assert_eq!(r.errors[MAX_ERRORS].line, MAX_ERRORS + 2);
}

#[test]
fn a_record_is_refused_at_its_first_field_too_many() {
    // One row of a million fields under a one-column header.
    let mut body = b"mac\n".to_vec();
    body.extend(b",".repeat(1_000_000));
    body.extend(b"\n001122334455\n");
    let r = check(Format::Csv, &body);
    assert_eq!(lines(&r), [2], "{:?}", r.errors);
    assert_eq!(r.created, 1, "the next record is read");
    let mut header = b"mac".to_vec();
    for i in 0..csv_rows::MAX_COLUMNS {
        header.extend(format!(",P{i}").as_bytes());
    }
    let r = check(Format::Csv, &header);
    assert!(r.errors[0].error.contains("more than"), "{:?}", r.errors);
}

/// The import checks an operator's row against the device as its own write transaction sees
/// it: an administrator's move that commits while the import starts is either before the
/// check, or after the write.
#[test]
fn an_operator_row_is_checked_against_the_device_the_import_writes() {
    let (_dir, store) = store();
    stored(&store, A);
    let operator = Principal {
        user: "olivia".into(),
        role: Role::Operator,
        sites: ["hq".to_string()].into(),
        box_token: false,
    };
    let (began, moving) = std::sync::mpsc::channel();
    let mover = {
        let store = store.clone();
        std::thread::spawn(move || {
            store.update_device(A, |d| {
                began.send(()).unwrap();
                // Time for the import to look at the device before the move commits.
                std::thread::sleep(std::time::Duration::from_millis(500));
                d.site = "branch".into();
                Ok::<_, ()>(())
            })
        })
    };
    moving.recv().unwrap();
    let result = run(
        &store,
        &operator,
        Format::Json,
        br#"[{"mac":"001122334455","label":"mine"}]"#,
        false,
        false,
    );
    mover.join().unwrap().unwrap().unwrap();
    match result {
        Err(ApiError::Forbidden(e)) => {
            assert!(e.contains("a site not assigned to olivia"), "{e}");
            assert!(!e.contains("branch"), "the other site is not named: {e}");
        }
        other => panic!("the moved device was imported into: {other:?}"),
    }
    assert_eq!(get(&store, A).label, "desk");
}

#[test]
fn an_applied_import_says_what_it_did_to_each_device() {
    let (_dir, store) = store();
    stored(&store, A);
    let (report, changes) = run(
        &store,
        &admin(),
        Format::Csv,
        b"mac,label\n001122334455,desk\n001122334456,new\n",
        false,
        false,
    )
    .unwrap();
    assert!(report.applied);
    assert_eq!(
        (report.created, report.updated, report.unchanged),
        (1, 0, 1)
    );
    let changes = changes.unwrap();
    assert_eq!(changes["unchanged"], serde_json::json!(["001122334455"]));
    assert_eq!(changes["created"]["001122334456"]["label"]["after"], "new");
    let (report, changes) = run(
        &store,
        &admin(),
        Format::Csv,
        b"mac\n001122334455\n",
        true,
        false,
    )
    .unwrap();
    assert!(
        !report.applied && changes.is_none(),
        "a dry run changes nothing"
    );
}

/// A secret of the wrong type was quoted back in the row's error (`integer `4711``), which
/// the report lists for every bad row.
#[test]
fn json_errors_do_not_repeat_a_secret() {
    let r = check(
        Format::Json,
        br#"[{"mac":"001122334455","secrets":{"voicemail.pin":4711}},
             {"mac":"001122334456","http_credential":{"username":"u","password":4711}}]"#,
    );
    let errors: Vec<&str> = r.errors.iter().map(|e| e.error.as_str()).collect();
    assert_eq!(errors.len(), 2, "{errors:?}");
    for e in &errors {
        assert!(!e.contains("4711"), "{errors:?}");
        assert!(e.contains("invalid type: integer, expected "), "{errors:?}");
    }
}

/// A column whose name no parameter can have (`colour`, a misspelt `sip.sever`, a Poly name
/// that is no XML attribute) is one error of the header, on line 1, as docs/import-export.md
/// says: it was refused on each row that gave it a value (a thousand errors for a big file,
/// none on line 1) and let through the rows that left it empty.
#[test]
fn an_unknown_parameter_column_is_one_header_error() {
    for column in ["colour", "sip.sever", "secret:colour", "poly:1bad"] {
        let body = format!(
            "mac,label,{column}\n\
             001122334455,a,red\n\
             001122334456,b,\n\
             001122334457,c,blue\n"
        );
        let r = check(Format::Csv, body.as_bytes());
        assert_eq!(lines(&r), [1], "{column}: {:?}", r.errors);
        let error = &r.errors[0].error;
        let name = column.trim_start_matches("secret:");
        assert!(
            error.starts_with("header: ") && error.contains(name),
            "{column}: {error}"
        );
    }
    // Names a parameter can have still pass the header.
    let r = check(
        Format::Csv,
        b"mac,sip.domain,SIPDOMAIN,yealink:x.y,secret:line.1.password\n\
          001122334455,example.com,example.com,1,pw\n",
    );
    assert!(r.errors.is_empty(), "{:?}", r.errors);
}

/// A spreadsheet's own columns (`Notes`, `Location`) were taken as Avaya settings, and each
/// row's text went to its phone as `SET Notes …`. Such a column is one header error now,
/// naming it and how to write a real Avaya setting; the layer API refuses the name alike. A
/// name in Avaya's form, or with the `avaya:` prefix, is still a setting.
#[test]
fn a_spreadsheet_column_is_no_avaya_setting() {
    for column in ["Notes", "Location", "secret:Notes"] {
        let body = format!(
            "mac,label,{column}
001122334455,a,call Bob
"
        );
        let r = check(Format::Csv, body.as_bytes());
        assert_eq!(lines(&r), [1], "{column}: {:?}", r.errors);
        let error = &r.errors[0].error;
        let name = column.trim_start_matches("secret:");
        assert!(
            error.starts_with(&format!(
                "header: {}: {name}: ",
                if column.starts_with("secret:") {
                    "secrets"
                } else {
                    "params"
                }
            )) && error.contains(&format!("avaya:{}", name.to_ascii_uppercase())),
            "{column}: {error}"
        );
        assert!(
            crate::admin::settings::check_param("params", name, Some("x")).is_err(),
            "{name}"
        );
    }
    // A device's APPNAME reaches no phone (docs/parameters.md): refused in the header too.
    let r = check(Format::Csv, b"mac,APPNAME\n001122334455,x.bin\n");
    assert_eq!(lines(&r), [1], "{:?}", r.errors);
    assert!(
        r.errors[0].error.contains("upgrade script"),
        "{:?}",
        r.errors
    );
    let (_dir, store) = store();
    let r = import(
        &store,
        Format::Csv,
        b"mac,ENABLE_OPUS,avaya:Notes
001122334455,1,desk
",
    );
    assert!(r.applied, "{:?}", r.errors);
    assert_eq!(get(&store, A).params.len(), 2);
}

/// A parameter whose name makes it a secret (docs/parameters.md), set as a plain parameter,
/// left in an export in clear, CSV and JSON alike ("secret values never leave"). Neither
/// export carries its value now; the JSON lists its name with the secrets; and each export,
/// imported again, leaves every device as it was, the value included.
#[test]
fn an_export_carries_no_value_of_a_parameter_named_as_a_secret() {
    let (_dir, store) = store();
    let r = import(
        &store,
        Format::Csv,
        b"mac,SIPDOMAIN,SIP_PASSWORD,admin.password,line.1.password\n\
          001122334455,example.com,pw-one,2580,pw-three\n",
    );
    assert!(r.applied, "{:?}", r.errors);
    let before = get(&store, A);
    let secret_values = ["pw-one", "2580", "pw-three"];

    let csv_text = String::from_utf8(export::csv(&store.list_devices().unwrap()).unwrap()).unwrap();
    let views: Vec<DeviceView> = store
        .list_devices()
        .unwrap()
        .into_iter()
        .map(DeviceView::from)
        .collect();
    let json_text = serde_json::to_string(&views).unwrap();
    for value in secret_values {
        assert!(!csv_text.contains(value), "{value} in {csv_text}");
        assert!(!json_text.contains(value), "{value} in {json_text}");
    }
    assert!(csv_text.contains("example.com"), "{csv_text}");
    assert_eq!(
        views[0].secrets,
        ["SIP_PASSWORD", "admin.password", "line.1.password"]
    );
    assert_eq!(views[0].params.len(), 1, "{:?}", views[0].params);

    for (format, text) in [(Format::Csv, csv_text), (Format::Json, json_text)] {
        let r = import(&store, format, text.as_bytes());
        assert!(r.applied, "{format:?}: {:?}", r.errors);
        assert_eq!((r.updated, r.unchanged), (0, 1), "{format:?}");
        assert_eq!(get(&store, A), before, "{format:?}");
    }
}

/// An import told to create its sites creates only what `POST /sites` would: a name with a
/// space is a bad row, and no site is made.
#[test]
fn an_import_creates_only_site_names_a_site_record_takes() {
    let (_dir, store) = store();
    let body = b"mac,site\n001122334455,lab\n001122334456,Main Office\n";
    let r = run(&store, &admin(), Format::Csv, body, false, true)
        .unwrap()
        .0;
    assert_eq!(lines(&r), [3], "{:?}", r.errors);
    assert!(
        r.errors[0]
            .error
            .starts_with("site: \"Main Office\" must be"),
        "{:?}",
        r.errors
    );
    assert!(!r.applied);
    assert!(store.get_site("Main Office").unwrap().is_none());
    assert!(store.get_site("lab").unwrap().is_none(), "nothing written");
    let r = run(
        &store,
        &admin(),
        Format::Csv,
        b"mac,site\n001122334455,lab\n",
        false,
        true,
    )
    .unwrap()
    .0;
    assert_eq!(r.sites_created, ["lab"]);
    assert!(store.get_site("lab").unwrap().is_some());
}

/// A file a spreadsheet saved with `;` between fields (where `,` is the decimal comma) was
/// refused with "the first column must be `mac`", which did not say why.
#[test]
fn a_header_separated_by_semicolons_is_named_so() {
    let r = check(Format::Csv, b"mac;model;site\n001122334455;J179;hq\n");
    assert_eq!(lines(&r), [1]);
    let error = &r.errors[0].error;
    assert!(
        error.starts_with("header: \"mac;model;site\" is separated by semicolons")
            && error.contains("must be separated by commas"),
        "{error}"
    );
    // Without a header the first line is a device's row, whose cells are not repeated.
    let r = check(Format::Csv, b"001122334455;J179;hq;hunter2\n");
    let error = &r.errors[0].error;
    assert!(
        error.starts_with("header: the first line is separated by semicolons"),
        "{error}"
    );
    assert!(!error.contains("hunter2"), "{error}");
    // A first column that is simply not `mac` is still said as before.
    let r = check(Format::Csv, b"model,mac\nJ179,001122334455\n");
    assert_eq!(r.errors[0].error, "header: the first column must be `mac`");
}
