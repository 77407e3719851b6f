//! Contacts (dingraia's management calls): user get / create / update / delete, department
//! list-sub. All oapi `topapi/v2` calls with snake_case bodies.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::group::result;
use super::{ApiCall, RequestSpec, merge_extra, require, unit};
use crate::error::ApiError;

/// `POST {oapi}/topapi/v2/user/get`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserGet {
    /// `userid`.
    pub user_id: String,
    /// `language` (`zh_CN`, `en_US`).
    pub language: Option<String>,
}

/// The main fields of a user; the rest stays in `extra`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct User {
    /// `userid`.
    pub userid: String,
    /// `unionid`.
    pub unionid: Option<String>,
    /// `name`.
    pub name: String,
    /// `mobile`.
    pub mobile: Option<String>,
    /// `title`.
    pub title: Option<String>,
    /// `email`.
    pub email: Option<String>,
    /// `dept_id_list`.
    pub dept_id_list: Vec<i64>,
    /// `active`.
    pub active: Option<bool>,
    /// `admin`.
    pub admin: Option<bool>,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ApiCall for UserGet {
    type Output = User;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("userid", &self.user_id)?;
        let mut body = json!({"userid": self.user_id});
        if let (Some(l), Some(obj)) = (&self.language, body.as_object_mut()) {
            obj.insert("language".into(), json!(l));
        }
        Ok(RequestSpec::oapi_post("/topapi/v2/user/get", body))
    }
    fn parse(&self, body: Value) -> Result<User, ApiError> {
        result(body)
    }
}

/// `POST {oapi}/topapi/v2/user/create`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserCreate {
    /// `name`.
    pub name: String,
    /// `mobile`.
    pub mobile: Option<String>,
    /// `dept_id_list` (≤ 100).
    pub dept_ids: Vec<i64>,
    /// Any other documented field (`userid`, `title`, `email`, `job_number`, ...).
    pub fields: Map<String, Value>,
}

/// The answer of [`UserCreate`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct UserCreated {
    /// `userid`.
    pub userid: String,
    /// `unionId`.
    #[serde(rename = "unionId")]
    pub union_id: Option<String>,
}

impl ApiCall for UserCreate {
    type Output = UserCreated;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("name", &self.name)?;
        if self.dept_ids.len() > 100 {
            return Err(ApiError::validation("`dept_id_list` takes at most 100 ids"));
        }
        let mut body = json!({"name": self.name});
        if let Some(obj) = body.as_object_mut() {
            if let Some(m) = &self.mobile {
                obj.insert("mobile".into(), json!(m));
            }
            if !self.dept_ids.is_empty() {
                let ids: Vec<String> = self.dept_ids.iter().map(i64::to_string).collect();
                obj.insert("dept_id_list".into(), json!(ids.join(",")));
            }
        }
        merge_extra(&mut body, &self.fields);
        Ok(RequestSpec::oapi_post("/topapi/v2/user/create", body))
    }
    fn parse(&self, body: Value) -> Result<UserCreated, ApiError> {
        result(body)
    }
}

/// `POST {oapi}/topapi/v2/user/update`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserUpdate {
    /// `userid`.
    pub user_id: String,
    /// Fields to change.
    pub changes: Map<String, Value>,
}

impl ApiCall for UserUpdate {
    type Output = ();
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("userid", &self.user_id)?;
        let mut body = json!({"userid": self.user_id});
        merge_extra(&mut body, &self.changes);
        Ok(RequestSpec::oapi_post("/topapi/v2/user/update", body))
    }
    fn parse(&self, body: Value) -> Result<(), ApiError> {
        unit(body)
    }
}

/// `POST {oapi}/topapi/v2/user/delete`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserDelete {
    /// `userid`.
    pub user_id: String,
}

impl ApiCall for UserDelete {
    type Output = ();
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        require("userid", &self.user_id)?;
        Ok(RequestSpec::oapi_post(
            "/topapi/v2/user/delete",
            json!({"userid": self.user_id}),
        ))
    }
    fn parse(&self, body: Value) -> Result<(), ApiError> {
        unit(body)
    }
}

/// `POST {oapi}/topapi/v2/department/listsub`: the direct sub-departments of one department.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepartmentListSub {
    /// `dept_id` (1 is the root).
    pub dept_id: i64,
    /// `language`.
    pub language: Option<String>,
}

/// One department.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct Department {
    /// `dept_id`.
    pub dept_id: i64,
    /// `name`.
    pub name: String,
    /// `parent_id`.
    pub parent_id: Option<i64>,
    /// Every other field.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ApiCall for DepartmentListSub {
    type Output = Vec<Department>;
    fn spec(&self) -> Result<RequestSpec, ApiError> {
        let mut body = json!({"dept_id": self.dept_id});
        if let (Some(l), Some(obj)) = (&self.language, body.as_object_mut()) {
            obj.insert("language".into(), json!(l));
        }
        Ok(RequestSpec::oapi_post(
            "/topapi/v2/department/listsub",
            body,
        ))
    }
    fn parse(&self, body: Value) -> Result<Vec<Department>, ApiError> {
        result(body)
    }
}
