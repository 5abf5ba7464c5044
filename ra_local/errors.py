"""Service errors as the model defines them (type name + HTTP status)."""


class ServiceError(Exception):
    status = 400
    error_type = "ValidationException"

    def __init__(self, message):
        super().__init__(message)
        self.message = message


class ValidationError(ServiceError):
    status = 400
    error_type = "ValidationException"


class NotFoundError(ServiceError):
    status = 404
    error_type = "ResourceNotFoundException"


class AccessDeniedError(ServiceError):
    status = 403
    error_type = "AccessDeniedException"


class TooManyTagsError(ServiceError):
    status = 400
    error_type = "TooManyTagsException"


class UnavailableError(ServiceError):
    status = 503
    error_type = "ServiceUnavailableException"
