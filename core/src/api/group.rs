//! Scene groups (dingraia's management calls): create, get, update, members add / remove /
//! list, sub-admins, mute. oapi calls use snake_case bodies; the new-API calls camelCase.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{ApiCall, RequestSpec, from_value, merge_extra, require, unit};
use crate::error::ApiError;

/// Scene groups take at most 999 user ids per call.
pub const MAX_GROUP_USERS: usize = 999;

pub(crate) fn join_ids(name: &str, ids: &[String], max: usize) -> Result<String, ApiError> {
    if ids.len() > max {
        return Err(ApiError::validation(format!(
            "`{name}` takes at most {max} ids, not {}",
            ids.len()
        )));
    }
    if let Some(bad) = ids.iter().find(|i| i.contains(',') || i.trim().is_empty()) {
        return Err(ApiError::validation(format!(
            "invalid id `{bad}` in `{name}`"
        )));
    }
    Ok(ids.join(","))
}

/// Reads `result` of a topapi answer.
pub(crate) fn result<T: serde::de::DeserializeOwned>(body: Value) -> Result<T, ApiError> {
    let r = body.get("result").cloned().unwrap_or(Value::Null);
    from_value(r)
}

/// `POST {oapi}/topapi/im/chat/scenegroup/create`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SceneGroupCreate {
    /// `title`.
    pub title: String,
    /// `template_id`.
    pub template_id: String,
    /// `owner_user_id`.
    pub owner_user_id: String,
    /// `user_ids` (≤ 999).
    pub user_ids: Vec<String>,
    /// `subadmin_ids` (≤ 999).
    pub subadmin_ids: Vec<String>,
    /// Any of the documented 0/1 flags and other fields (`uuid`, `icon`, `searchable`, ...).
    pub options: Map<String, Value>,
}

/// The answer of [`SceneGroupCreate`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct SceneGroupCreated {
    /// `open_conversation_id`.
    pub open_conversation_id: String,
    /// `chat_id`.
    pub chat_id: String,
}

impl ApiCall for SceneGroupCreate {
    type Output = SceneGroupCreated;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("title", &self.title)?;
        require("template_id", &self.template_id)?;
        require("owner_user_id", &self.owner_user_id)?;
        let mut body = json!({
            "title": self.title, "template_id": self.template_id, "owner_user_id": self.owner_user_id,
        });
        if let Some(obj) = body.as_object_mut() {
            if !self.user_ids.is_empty() {
                obj.insert(
                    "user_ids".into(),
                    json!(join_ids("user_ids", &self.user_ids, MAX_GROUP_USERS)?),
                );
            }
            if !self.subadmin_ids.is_empty() {
                obj.insert(
                    "subadmin_ids".into(),
                    json!(join_ids(
                        "subadmin_ids",
                        &self.subadmin_ids,
                        MAX_GROUP_USERS
                    )?),
                );
            }
        }
        merge_extra(&mut body, &self.options);
        Ok(RequestSpec::oapi_post(
            "/topapi/im/chat/scenegroup/create",
            body,
        ))
    }
    fn parse(&self, body: Value) -> Result<SceneGroupCreated, ApiError> {
        result(body)
    }
}

/// `POST {oapi}/topapi/im/chat/scenegroup/get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SceneGroupGet {
    /// `open_conversation_id`.
    pub open_conversation_id: String,
}

/// The answer of [`SceneGroupGet`] (main fields typed, the rest raw).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct SceneGroupInfo {
    /// `open_conversation_id`.
    pub open_conversation_id: String,
    /// `title`.
    pub title: String,
    /// `owner_staff_id`.
    pub owner_staff_id: String,
    /// `sub_admin_staff_ids`.
    pub sub_admin_staff_ids: Vec<String>,
    /// `member_amount`.
    pub member_amount: Option<i64>,
    /// `template_id`.
    pub template_id: String,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ApiCall for SceneGroupGet {
    type Output = SceneGroupInfo;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("open_conversation_id", &self.open_conversation_id)?;
        Ok(RequestSpec::oapi_post(
            "/topapi/im/chat/scenegroup/get",
            json!({"open_conversation_id": self.open_conversation_id}),
        ))
    }
    fn parse(&self, body: Value) -> Result<SceneGroupInfo, ApiError> {
        result(body)
    }
}

/// `POST {oapi}/topapi/im/chat/scenegroup/update`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SceneGroupUpdate {
    /// `open_conversation_id`.
    pub open_conversation_id: String,
    /// Fields to change (`title`, `owner_user_id`, `icon`, the 0/1 flags, ...).
    pub changes: Map<String, Value>,
}

impl ApiCall for SceneGroupUpdate {
    type Output = ();
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("open_conversation_id", &self.open_conversation_id)?;
        let mut body = json!({"open_conversation_id": self.open_conversation_id});
        merge_extra(&mut body, &self.changes);
        Ok(RequestSpec::oapi_post(
            "/topapi/im/chat/scenegroup/update",
            body,
        ))
    }
    fn parse(&self, body: Value) -> Result<(), ApiError> {
        unit(body)
    }
}

/// Add or remove scene-group members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SceneGroupMembers {
    /// `open_conversation_id`.
    pub open_conversation_id: String,
    /// `user_ids` (1 to 999).
    pub user_ids: Vec<String>,
    /// `true` adds (`member/add`), `false` removes (`member/delete`).
    pub add: bool,
}

impl ApiCall for SceneGroupMembers {
    type Output = ();
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("open_conversation_id", &self.open_conversation_id)?;
        if self.user_ids.is_empty() {
            return Err(ApiError::validation("`user_ids` is empty"));
        }
        let path = if self.add {
            "/topapi/im/chat/scenegroup/member/add"
        } else {
            "/topapi/im/chat/scenegroup/member/delete"
        };
        Ok(RequestSpec::oapi_post(
            path,
            json!({"open_conversation_id": self.open_conversation_id,
                   "user_ids": join_ids("user_ids", &self.user_ids, MAX_GROUP_USERS)?}),
        ))
    }
    fn parse(&self, body: Value) -> Result<(), ApiError> {
        unit(body)
    }
}

/// `POST {oapi}/topapi/im/chat/scenegroup/member/get`: one page of members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SceneGroupMemberList {
    /// `open_conversation_id`.
    pub open_conversation_id: String,
    /// `cursor` (0 for the first page).
    pub cursor: u64,
    /// `size` (page size, 1 to 1000).
    pub size: u32,
}

/// One page of [`SceneGroupMemberList`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct MemberPage {
    /// `has_more`.
    pub has_more: bool,
    /// `next_cursor`.
    pub next_cursor: Option<u64>,
    /// `member_user_ids`.
    pub member_user_ids: Vec<String>,
}

impl ApiCall for SceneGroupMemberList {
    type Output = MemberPage;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("open_conversation_id", &self.open_conversation_id)?;
        if !(1..=1000).contains(&self.size) {
            return Err(ApiError::validation("`size` must be 1 to 1000"));
        }
        Ok(RequestSpec::oapi_post(
            "/topapi/im/chat/scenegroup/member/get",
            json!({"open_conversation_id": self.open_conversation_id, "cursor": self.cursor, "size": self.size}),
        ))
    }
    fn parse(&self, body: Value) -> Result<MemberPage, ApiError> {
        result(body)
    }
}

/// `PUT /v1.0/im/sceneGroups/subAdmins`: make users admins (role 2) or members again (role 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SceneGroupSubAdmins {
    /// `openConversationId`.
    pub open_conversation_id: String,
    /// `userIds` (1 to 12).
    pub user_ids: Vec<String>,
    /// `true` → role 2 (admin), `false` → role 3 (member).
    pub admin: bool,
}

impl ApiCall for SceneGroupSubAdmins {
    type Output = ();
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("openConversationId", &self.open_conversation_id)?;
        if self.user_ids.is_empty() || self.user_ids.len() > 12 {
            return Err(ApiError::validation("`userIds` takes 1 to 12 ids"));
        }
        Ok(RequestSpec::api(
            http::Method::PUT,
            "/v1.0/im/sceneGroups/subAdmins",
            json!({"openConversationId": self.open_conversation_id, "userIds": self.user_ids,
                   "role": if self.admin { 2 } else { 3 }}),
        ))
    }
    fn parse(&self, body: Value) -> Result<(), ApiError> {
        unit(body)
    }
}

/// `POST /v1.0/im/sceneGroups/muteMembers/set`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SceneGroupMute {
    /// `openConversationId`.
    pub open_conversation_id: String,
    /// `userIdList` (1 to 999; owner and admins cannot be muted).
    pub user_ids: Vec<String>,
    /// `muteStatus`: `true` mutes, `false` unmutes.
    pub mute: bool,
    /// `muteDuration` in milliseconds.
    pub duration_ms: u64,
}

impl ApiCall for SceneGroupMute {
    type Output = ();
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("openConversationId", &self.open_conversation_id)?;
        if self.user_ids.is_empty() || self.user_ids.len() > MAX_GROUP_USERS {
            return Err(ApiError::validation("`userIdList` takes 1 to 999 ids"));
        }
        Ok(RequestSpec::api_post(
            "/v1.0/im/sceneGroups/muteMembers/set",
            json!({"openConversationId": self.open_conversation_id, "userIdList": self.user_ids,
                   "muteStatus": i32::from(self.mute), "muteDuration": self.duration_ms}),
        ))
    }
    fn parse(&self, body: Value) -> Result<(), ApiError> {
        unit(body)
    }
}
