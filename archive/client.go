package archive

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"
)

// ClientOptions say how to reach the store. Credentials come from the
// standard AWS chain: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, the shared
// config and credentials files (AWS_PROFILE), web identity
// (AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, as Kubernetes projects
// them), the ECS/EKS container endpoints and EC2 instance metadata.
type ClientOptions struct {
	// Endpoint is the store's URL (http://127.0.0.1:9000); empty means AWS
	// itself, or AWS_ENDPOINT_URL_S3 / AWS_ENDPOINT_URL when set.
	Endpoint string
	// Region; empty means the chain's (AWS_REGION, the profile), else
	// us-east-1, which S3-compatible stores accept.
	Region string
	// PathStyle puts the bucket in the path rather than the host name, as
	// most S3-compatible stores need.
	PathStyle bool
	// Dial replaces the SDK's dialer: tests dial into a network namespace.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Credentials replace the standard chain when set.
	Credentials aws.CredentialsProvider
	// Stall, when set, fails a request whose connection sends and
	// receives nothing for that long (ErrStall): a store that accepts a
	// request and never answers. A transfer making progress is not cut.
	Stall time.Duration
	// MaxAttempts is how often the SDK itself tries a request; 0 keeps
	// its default (3).
	MaxAttempts int
}

// NewClient returns an S3 client for o.
func NewClient(ctx context.Context, o ClientOptions) (*s3.Client, error) {
	var opts []func(*config.LoadOptions) error
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(o.Credentials))
	}
	if o.Dial != nil || o.Stall > 0 {
		opts = append(opts, config.WithHTTPClient(awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
			if o.Dial != nil {
				tr.DialContext = o.Dial
			}
			if o.Stall > 0 {
				tr.DialContext = stallDial(tr.DialContext, o.Stall)
				// An idle connection is closed before its deadline could
				// fail the request that would take it up.
				tr.IdleConnTimeout = min(tr.IdleConnTimeout, o.Stall/2)
			}
		})))
	}
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("load AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		cfg.Region = "us-east-1"
	}
	return s3.NewFromConfig(cfg, func(so *s3.Options) {
		if o.Endpoint != "" {
			so.BaseEndpoint = aws.String(o.Endpoint)
		}
		so.UsePathStyle = o.PathStyle
		// A multipart object's checksum covers its parts, not the bytes
		// read back: the SDK would warn on every such download.
		so.DisableLogOutputChecksumValidationSkipped = true
		if o.MaxAttempts > 0 {
			so.RetryMaxAttempts = o.MaxAttempts
		}
	}), nil
}

// CheckEndpoint validates an --upload-endpoint / --endpoint value.
func CheckEndpoint(s string) error {
	if s == "" || strings.HasPrefix(s, "http://") || strings.HasPrefix(s, "https://") {
		return nil
	}
	return fmt.Errorf("invalid endpoint %q: want http://HOST:PORT or https://HOST", s)
}

// ErrorCode returns the store's error code (AccessDenied, NoSuchBucket…),
// or "" when err did not come from the store.
func ErrorCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// credentialCodes are the error codes by which S3 and S3-compatible
// stores refuse credentials: the key, the signature, the session token
// (MinIO says InvalidTokenId where AWS says InvalidToken), its expiry.
// A HEAD has no body, so its refusal is only the status (Forbidden).
var credentialCodes = map[string]bool{
	"AccessDenied": true, "Forbidden": true, "Unauthorized": true,
	"InvalidAccessKeyId": true, "SignatureDoesNotMatch": true, "InvalidSecurity": true,
	"InvalidToken": true, "InvalidTokenId": true, "InvalidClientTokenId": true,
	"ExpiredToken": true, "ExpiredTokenException": true, "TokenRefreshRequired": true,
	"MissingSecurityHeader": true, "MissingAuthenticationToken": true,
}

// CredentialError reports whether err says the store refused the
// credentials, or that there were none to give: a reason to read them
// again.
func CredentialError(err error) bool {
	if credentialCodes[ErrorCode(err)] {
		return true
	}
	return strings.Contains(err.Error(), "failed to retrieve credentials") ||
		strings.Contains(err.Error(), "no EC2 IMDS role found")
}
