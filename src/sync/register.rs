//! Registration: a one-time token and a CSR for a key made here, answered by the appliance
//! certificate and the site this box serves. Server authentication only (the pinned cloud CA);
//! every later call uses the new certificate for mutual TLS.

use std::path::Path;
use std::time::Duration;

use super::SyncError;
use super::client::CloudClient;
use super::config::CloudConfig;
use super::protocol::{PATH_REGISTER, RegisterRequest, RegisterResponse, VERSION};
use crate::model::now_unix;
use crate::pki::cloud;
use crate::store::{Registration, Store};

pub async fn register(
    store: &Store,
    pki_dir: &Path,
    config: &CloudConfig,
    url: &str,
    token: &str,
) -> Result<Registration, SyncError> {
    if config.ca_file.as_os_str().is_empty() {
        return Err(SyncError::NotConfigured);
    }
    if token.trim().is_empty() {
        return Err(SyncError::Url("the registration token is empty".into()));
    }
    let tls = cloud::cloud_client_config(&config.ca_file, None)?;
    let client = CloudClient::new(url, tls, Duration::from_millis(config.request_timeout_ms))?;
    let csr = cloud::appliance_csr(pki_dir, "edgeprov appliance")?;
    let req = RegisterRequest {
        version: VERSION,
        token: token.trim().to_string(),
        csr,
    };
    let resp: RegisterResponse = client.post(PATH_REGISTER, &req).await?;
    if resp.version != VERSION {
        return Err(SyncError::Schema(format!(
            "registration answer has version {}",
            resp.version
        )));
    }
    if resp.site.is_empty() {
        return Err(SyncError::Schema(
            "registration answer names no site".into(),
        ));
    }
    // The same names a page may carry, checked before anything is installed or stored.
    for (field, value) in [("site", &resp.site), ("appliance_id", &resp.appliance_id)] {
        super::pull::check_name(field, value)
            .map_err(|e| SyncError::Schema(format!("registration answer: {e}")))?;
    }
    cloud::install_appliance_cert(pki_dir, &resp.certificate)?;
    let reg = Registration {
        url: url.to_string(),
        site: resp.site,
        appliance_id: resp.appliance_id,
        registered_at: now_unix(),
        generation: 0,
    };
    let s = store.clone();
    let reg = super::blocking(move || s.put_registration(&reg)).await?;
    tracing::info!(url = %crate::firmware::masked_url(url), site = %reg.site, "registered with the cloud");
    Ok(reg)
}
