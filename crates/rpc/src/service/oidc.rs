//! `arcana.v1.OidcClientService` over the OIDC clients port.
use std::sync::Arc;

use crate::convert::v1::update_client_from_request;
use crate::v1::{self, oidc_client_service_server::OidcClientService as OidcClientRpc};
use domain::OidcClientService;
use tonic::{Request, Response, Status};

use super::{PrincipalSource, bearer};

type Answer<T> = std::result::Result<Response<T>, Status>;

/// Serves the OIDC clients port to callers identified by `P`.
pub struct OidcClientGrpc<P> {
    clients: Arc<dyn OidcClientService>,
    source: P,
}

impl<P: PrincipalSource> OidcClientGrpc<P> {
    pub fn new(clients: Arc<dyn OidcClientService>, source: P) -> Self {
        Self { clients, source }
    }
}

#[tonic::async_trait]
impl<P: PrincipalSource> OidcClientRpc for OidcClientGrpc<P> {
    async fn create_client(
        &self,
        req: Request<v1::CreateClientRequest>,
    ) -> Answer<v1::IssuedClient> {
        let clients = &self.clients;
        bearer(&self.source, "CreateClient", req, |caller, m| async move {
            clients
                .create_client(&caller, m.try_into()?)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn list_clients(
        &self,
        req: Request<v1::ListClientsRequest>,
    ) -> Answer<v1::ListClientsResponse> {
        let clients = &self.clients;
        bearer(&self.source, "ListClients", req, |caller, m| async move {
            clients
                .list_clients(&caller, m.try_into()?)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn get_client(&self, req: Request<v1::GetClientRequest>) -> Answer<v1::OidcClient> {
        let clients = &self.clients;
        bearer(&self.source, "GetClient", req, |caller, m| async move {
            let (id,) = m.parse()?;
            clients.get_client(&caller, &id).await.map(Into::into)
        })
        .await
    }

    async fn update_client(&self, req: Request<v1::UpdateClientRequest>) -> Answer<v1::OidcClient> {
        let clients = &self.clients;
        bearer(&self.source, "UpdateClient", req, |caller, m| async move {
            let (id, patch) = update_client_from_request(m);
            clients
                .update_client(&caller, &id, patch)
                .await
                .map(Into::into)
        })
        .await
    }

    async fn delete_client(
        &self,
        req: Request<v1::DeleteClientRequest>,
    ) -> Answer<v1::DeleteClientResponse> {
        let clients = &self.clients;
        bearer(&self.source, "DeleteClient", req, |caller, m| async move {
            let (id,) = m.parse()?;
            clients.delete_client(&caller, &id).await.map(Into::into)
        })
        .await
    }

    async fn rotate_client_secret(
        &self,
        req: Request<v1::RotateClientSecretRequest>,
    ) -> Answer<v1::IssuedClient> {
        let clients = &self.clients;
        bearer(
            &self.source,
            "RotateClientSecret",
            req,
            |caller, m| async move {
                let (id,) = m.parse()?;
                clients
                    .rotate_client_secret(&caller, &id)
                    .await
                    .map(Into::into)
            },
        )
        .await
    }

    async fn create_service_account(
        &self,
        req: Request<v1::CreateServiceAccountRequest>,
    ) -> Answer<v1::IssuedServiceAccount> {
        let clients = &self.clients;
        bearer(
            &self.source,
            "CreateServiceAccount",
            req,
            |caller, m| async move {
                clients
                    .create_service_account(&caller, m.try_into()?)
                    .await
                    .map(Into::into)
            },
        )
        .await
    }

    async fn list_service_accounts(
        &self,
        req: Request<v1::ListServiceAccountsRequest>,
    ) -> Answer<v1::ListServiceAccountsResponse> {
        let clients = &self.clients;
        bearer(
            &self.source,
            "ListServiceAccounts",
            req,
            |caller, _| async move { clients.list_service_accounts(&caller).await.map(Into::into) },
        )
        .await
    }

    async fn get_service_account(
        &self,
        req: Request<v1::GetServiceAccountRequest>,
    ) -> Answer<v1::ServiceAccount> {
        let clients = &self.clients;
        bearer(
            &self.source,
            "GetServiceAccount",
            req,
            |caller, m| async move {
                let (id,) = m.parse()?;
                clients
                    .get_service_account(&caller, id)
                    .await
                    .map(Into::into)
            },
        )
        .await
    }

    async fn rotate_service_account_secret(
        &self,
        req: Request<v1::RotateServiceAccountSecretRequest>,
    ) -> Answer<v1::IssuedServiceAccount> {
        let clients = &self.clients;
        bearer(
            &self.source,
            "RotateServiceAccountSecret",
            req,
            |caller, m| async move {
                let (id, overlap_seconds) = m.parse()?;
                let input = domain::SecretRotationInput { overlap_seconds };
                clients
                    .rotate_service_account_secret(&caller, id, input)
                    .await
                    .map(Into::into)
            },
        )
        .await
    }

    async fn delete_service_account(
        &self,
        req: Request<v1::DeleteServiceAccountRequest>,
    ) -> Answer<v1::DeleteServiceAccountResponse> {
        let clients = &self.clients;
        bearer(
            &self.source,
            "DeleteServiceAccount",
            req,
            |caller, m| async move {
                let (id,) = m.parse()?;
                clients
                    .delete_service_account(&caller, id)
                    .await
                    .map(Into::into)
            },
        )
        .await
    }
}
