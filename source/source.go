package source

import (
	"cmp"
	"context"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
)

// API batch limits.
const (
	secretsPerBatch    = 20 // BatchGetSecretValue SecretIdList
	parametersPerBatch = 10 // GetParameters Names
	parametersPerPage  = 10 // GetParametersByPath MaxResults
)

// SecretsManagerAPI is the part of the Secrets Manager client the source uses.
type SecretsManagerAPI interface {
	GetSecretValue(context.Context, *secretsmanager.GetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.GetSecretValueOutput, error)
	BatchGetSecretValue(context.Context, *secretsmanager.BatchGetSecretValueInput, ...func(*secretsmanager.Options)) (*secretsmanager.BatchGetSecretValueOutput, error)
}

// SSMAPI is the part of the SSM client the source uses.
type SSMAPI interface {
	GetParameter(context.Context, *ssm.GetParameterInput, ...func(*ssm.Options)) (*ssm.GetParameterOutput, error)
	GetParameters(context.Context, *ssm.GetParametersInput, ...func(*ssm.Options)) (*ssm.GetParametersOutput, error)
	GetParametersByPath(context.Context, *ssm.GetParametersByPathInput, ...func(*ssm.Options)) (*ssm.GetParametersByPathOutput, error)
}

// Options configure a Source.
type Options struct {
	// SecretsManager and SSM are the home region's clients, with the
	// extension's own credentials.
	SecretsManager SecretsManagerAPI
	SSM            SSMAPI
	// HomeRegion is the region of SecretsManager and SSM. Keys whose ARN
	// names another region are fetched with clients for that region, made
	// by NewClients when first needed (nil: every key goes to the home
	// clients).
	HomeRegion string
	NewClients ClientFactory
	// MaxRoles bounds the roles keys may name (default 20); a key of one
	// more role fails with TooManyRoles.
	MaxRoles int
	// FailoverRegion, if set, holds replicas of the home region's secrets:
	// a secret the home region fails to answer transiently (5xx, reset,
	// timeout; not throttling, not found or access denied) is fetched from
	// there, and its Item.Region says so.
	FailoverRegion string
	// MaxConcurrency bounds the AWS calls of reads (FetchOne) in flight at
	// once, across services and regions.
	MaxConcurrency int
	// PrefetchConcurrency bounds the calls of prefetches and refreshes
	// (Fetch, FetchPath) in flight at once; 0 means MaxConcurrency. Both
	// bounds adapt to throttling (see limiter).
	PrefetchConcurrency int
	// RetryThrottled makes prefetches and refreshes ride out throttling
	// rather than fail at once: a throttled BatchGetSecretValue falls back to
	// GetSecretValue per secret (a quota a hundred times larger), and other
	// throttled calls of Fetch and FetchPath are made again after a
	// jittered back-off, within the caller's context.
	RetryThrottled bool
	// Per-call timeouts; 0 means none beyond the caller's context.
	SecretsTimeout, ParametersTimeout time.Duration
	Logger                            *slog.Logger
}

// Deliver receives the outcome of one key: an item, or an error (*Error).
type Deliver func(key Key, item *Item, err error)

// Source fetches items from AWS, batching where the APIs allow. It is safe for
// concurrent use.
type Source struct {
	home    *clients
	reads   *limiter // bounds concurrent AWS calls of reads, in every region
	batches *limiter // bounds concurrent AWS calls of prefetches and refreshes
	retry   bool     // Options.RetryThrottled
	smTO    time.Duration
	ssmTO   time.Duration
	log     *slog.Logger
	stats   counters
	reach   reach
}

// New returns a Source.
func New(o Options) *Source {
	if o.MaxConcurrency < 1 {
		o.MaxConcurrency = 1
	}
	if o.PrefetchConcurrency < 1 {
		o.PrefetchConcurrency = o.MaxConcurrency
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return &Source{
		home:    &clients{sm: o.SecretsManager, ssm: o.SSM},
		reads:   newLimiter(o.MaxConcurrency),
		batches: newLimiter(o.PrefetchConcurrency),
		retry:   o.RetryThrottled,
		smTO:    o.SecretsTimeout, ssmTO: o.ParametersTimeout,
		log: o.Logger,
		reach: reach{homeRegion: o.HomeRegion, newClients: o.NewClients, maxRoles: cmp.Or(o.MaxRoles, 20), failoverRegion: o.FailoverRegion,
			others: map[target]*clients{}, roles: map[string]bool{}},
	}
}

// call runs one AWS call of api within the concurrency bound and the
// service's per-call timeout, and counts it. Under a prefetch or refresh
// (batchContext) with RetryThrottled, a throttled call other than
// BatchGetSecretValue (which has its own fallback) is made again after a
// back-off, for as long as ctx allows.
func (s *Source) call(ctx context.Context, api API, fn func(context.Context) error) error {
	lim, batch := s.reads, inBatch(ctx)
	if batch {
		lim = s.batches
	}
	for attempt := 0; ; attempt++ {
		err := s.callOnce(ctx, lim, api, fn)
		if err == nil || !batch || !s.retry || api == APIBatchGetSecretValue || !isThrottled(err) {
			return err
		}
		if !sleepCtx(ctx, throttleBackoff(attempt)) {
			return err
		}
	}
}

func (s *Source) callOnce(ctx context.Context, lim *limiter, api API, fn func(context.Context) error) (err error) {
	gen, err := lim.acquire(ctx)
	if err != nil {
		return err
	}
	defer func() { lim.release(gen, err != nil && isThrottled(err)) }()
	if err := ctx.Err(); err != nil {
		return err // the slot came free as ctx ended: no call was made
	}
	defer func() { s.stats.record(api, err) }()
	to := s.smTO
	if api.Service() == ParameterStore {
		to = s.ssmTO
	}
	if to > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, to)
		defer cancel()
	}
	return fn(ctx)
}

// Fetch fetches keys, in batches where the APIs allow and in parallel up to
// the concurrency bound, and calls deliver exactly once per key as soon as
// that key's outcome is known. It returns when every key has been delivered.
// deliver may be called from several goroutines at once. Keys of other
// regions are fetched there, in batches of their own.
func (s *Source) Fetch(ctx context.Context, keys []Key, deliver Deliver) {
	ctx = batchContext(ctx)
	groups := s.group(keys, deliver)
	if len(groups) == 1 {
		for cl, keys := range groups {
			s.fetchGroup(ctx, cl, keys, deliver)
		}
		return
	}
	var wg sync.WaitGroup
	for cl, keys := range groups {
		wg.Go(func() { s.fetchGroup(ctx, cl, keys, deliver) })
	}
	wg.Wait()
}

// fetchGroup fetches keys that cl serves.
func (s *Source) fetchGroup(ctx context.Context, cl *clients, keys []Key, deliver Deliver) {
	var secrets, params, decryptOff, singles []Key
	for _, k := range keys {
		switch {
		case !k.Plain():
			singles = append(singles, k)
		case k.Service == SecretsManager:
			secrets = append(secrets, k)
		case strings.HasPrefix(k.ID, SecretsManagerReferencePrefix):
			singles = append(singles, k) // SSM serves references one at a time
		case k.Decrypt:
			params = append(params, k)
		default:
			decryptOff = append(decryptOff, k)
		}
	}
	var wg sync.WaitGroup
	for chunk := range chunks(secrets, secretsPerBatch) {
		wg.Go(func() { s.fetchSecretBatch(ctx, cl, chunk, deliver) })
	}
	for _, group := range [][]Key{params, decryptOff} {
		for chunk := range chunks(group, parametersPerBatch) {
			wg.Go(func() { s.fetchParameterBatch(ctx, cl, chunk, deliver) })
		}
	}
	for _, k := range singles {
		wg.Go(func() { s.fetchOne(ctx, cl, k, deliver) })
	}
	wg.Wait()
}

// FetchOne fetches a single key with the single-item API.
func (s *Source) FetchOne(ctx context.Context, key Key) (*Item, error) {
	var (
		item *Item
		err  error
	)
	cl, cerr := s.clientsFor(key)
	if cerr != nil {
		return nil, cerr
	}
	s.fetchOne(ctx, cl, key, func(_ Key, it *Item, e error) { item, err = it, e })
	return item, err
}

func (s *Source) fetchOne(ctx context.Context, cl *clients, key Key, deliver Deliver) {
	if key.Service == SecretsManager {
		s.getSecret(ctx, cl, key, deliver)
		return
	}
	name := key.ID + key.Selector
	var out *ssm.GetParameterOutput
	err := s.call(ctx, APIGetParameter, func(ctx context.Context) (err error) {
		out, err = cl.ssm.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String(name), WithDecryption: aws.Bool(key.Decrypt)})
		return err
	})
	if err == nil && out.Parameter == nil {
		err = &Error{Class: ClassOther, Code: "MalformedResponse", Message: "GetParameter returned no parameter"}
	}
	if err != nil {
		deliver(key, nil, classify(key, err))
		return
	}
	deliver(key, parameterItem(key, out.Parameter), nil)
}

func (s *Source) getSecret(ctx context.Context, cl *clients, key Key, deliver Deliver) {
	in := &secretsmanager.GetSecretValueInput{SecretId: aws.String(key.ID)}
	if key.VersionID != "" {
		in.VersionId = aws.String(key.VersionID)
	}
	if key.VersionStage != "" {
		in.VersionStage = aws.String(key.VersionStage)
	}
	var out *secretsmanager.GetSecretValueOutput
	err := s.call(ctx, APIGetSecretValue, func(ctx context.Context) (err error) {
		out, err = cl.sm.GetSecretValue(ctx, in)
		return err
	})
	if err != nil {
		if s.failover(ctx, cl, []Key{key}, err, deliver) {
			return
		}
		deliver(key, nil, classify(key, err))
		return
	}
	s.homeAnswered(cl)
	deliver(key, secretItem(key, out.ARN, out.Name, out.VersionId, out.CreatedDate, out.SecretString, out.SecretBinary, out.VersionStages), nil)
}

// fetchSecretBatch fetches up to 20 current secret versions with one
// BatchGetSecretValue. Ids the batch can't answer for (refused batch API, an
// id the response doesn't name) go to GetSecretValue, concurrently.
func (s *Source) fetchSecretBatch(ctx context.Context, cl *clients, keys []Key, deliver Deliver) {
	if len(keys) == 1 || cl.noBatch.Load() {
		s.fetchEach(ctx, cl, keys, deliver)
		return
	}
	ids := make([]string, len(keys))
	for i, k := range keys {
		ids[i] = k.ID
	}
	var out *secretsmanager.BatchGetSecretValueOutput
	err := s.call(ctx, APIBatchGetSecretValue, func(ctx context.Context) (err error) {
		out, err = cl.sm.BatchGetSecretValue(ctx, &secretsmanager.BatchGetSecretValueInput{SecretIdList: ids})
		return err
	})
	if err != nil {
		if batchRefused(err) {
			if !cl.noBatch.Swap(true) {
				s.log.Warn("BatchGetSecretValue refused; using GetSecretValue from now on", "error", classify(Key{Service: SecretsManager, ID: "batch"}, err).Code)
			}
			s.fetchEach(ctx, cl, keys, deliver)
			return
		}
		if s.retry && isThrottled(err) {
			// BatchGetSecretValue's quota (100 TPS) is a hundredth of
			// GetSecretValue's: ask for each secret on its own.
			s.fetchEach(ctx, cl, keys, deliver)
			return
		}
		if s.failover(ctx, cl, keys, err, deliver) {
			return
		}
		for _, k := range keys {
			e := classify(k, err)
			e.Batch = true
			deliver(k, nil, e)
		}
		return
	}
	s.homeAnswered(cl)
	pending := make(map[string]Key, len(keys))
	for _, k := range keys {
		pending[k.ID] = k
	}
	take := func(id string) (Key, bool) {
		k, ok := pending[id]
		if ok && id != "" {
			delete(pending, id)
			return k, true
		}
		return Key{}, false
	}
	for i := range out.SecretValues {
		e := &out.SecretValues[i]
		// The ARN first: names are only unique within an account, and an
		// entry asked for by another account's ARN carries a name that may
		// also be asked for here. For the same reason an entry completing a
		// partial ARN of this batch is not matched by name: the partial ARN
		// is then asked for alone, and so is the name unless its own entry
		// comes too.
		arn := aws.ToString(e.ARN)
		k, ok := take(arn)
		if !ok && !completesPartialARN(keys, arn) {
			k, ok = take(aws.ToString(e.Name))
		}
		if ok {
			deliver(k, secretEntryItem(k, e), nil)
		}
	}
	for _, e := range out.Errors {
		if k, ok := take(aws.ToString(e.SecretId)); ok {
			deliver(k, nil, batchEntryError(k, e))
		}
	}
	// A partial ARN, say, comes back under the full one: ask for it alone.
	rest := make([]Key, 0, len(pending))
	for _, k := range keys {
		if _, ok := pending[k.ID]; ok {
			rest = append(rest, k)
		}
	}
	s.fetchEach(ctx, cl, rest, deliver)
}

// completesPartialARN reports whether arn is the full ARN of a secret asked
// for by a partial ARN (one without the "-" and six random characters) in keys.
func completesPartialARN(keys []Key, arn string) bool {
	for _, k := range keys {
		if strings.HasPrefix(k.ID, "arn:") && len(arn) == len(k.ID)+7 && strings.HasPrefix(arn, k.ID+"-") {
			return true
		}
	}
	return false
}

func batchEntryError(k Key, e smtypes.APIErrorType) *Error {
	code, msg := aws.ToString(e.ErrorCode), aws.ToString(e.Message)
	if code == "" {
		code = "UpstreamError" // an entry without a code: still one the caller can tell apart
	}
	return &Error{Class: classifyCode(code), Code: code, Message: msg, Key: k}
}

// fetchEach fetches keys one by one, concurrently.
func (s *Source) fetchEach(ctx context.Context, cl *clients, keys []Key, deliver Deliver) {
	var wg sync.WaitGroup
	for _, k := range keys {
		wg.Go(func() { s.fetchOne(ctx, cl, k, deliver) })
	}
	wg.Wait()
}

// fetchParameterBatch fetches up to 10 parameters with one GetParameters.
func (s *Source) fetchParameterBatch(ctx context.Context, cl *clients, keys []Key, deliver Deliver) {
	if len(keys) == 1 {
		s.fetchOne(ctx, cl, keys[0], deliver)
		return
	}
	names := make([]string, len(keys))
	for i, k := range keys {
		names[i] = k.ID
	}
	var out *ssm.GetParametersOutput
	err := s.call(ctx, APIGetParameters, func(ctx context.Context) (err error) {
		out, err = cl.ssm.GetParameters(ctx, &ssm.GetParametersInput{Names: names, WithDecryption: aws.Bool(keys[0].Decrypt)})
		return err
	})
	if err != nil {
		if !classify(keys[0], err).Class.Temporary() {
			// IAM and KMS judge every name of a GetParameters call, so one
			// denied or invalid name fails them all: give each its own
			// outcome with GetParameter.
			s.fetchEach(ctx, cl, keys, deliver)
			return
		}
		for _, k := range keys {
			e := classify(k, err)
			e.Batch = true
			deliver(k, nil, e)
		}
		return
	}
	pending := make(map[string]Key, len(keys))
	for _, k := range keys {
		pending[k.ID] = k
	}
	for i := range out.Parameters {
		p := &out.Parameters[i]
		// The ARN first: a parameter shared from another account may have
		// the name of one of this account's.
		for _, n := range []*string{p.ARN, p.Name} {
			if k, ok := pending[aws.ToString(n)]; ok {
				delete(pending, k.ID)
				deliver(k, parameterItem(k, p), nil)
				break
			}
		}
	}
	for _, n := range out.InvalidParameters {
		if k, ok := pending[n]; ok {
			delete(pending, n)
			deliver(k, nil, notFound(k, "ParameterNotFound", "parameter not found"))
		}
	}
	rest := make([]Key, 0, len(pending))
	for _, k := range keys {
		if _, ok := pending[k.ID]; ok {
			rest = append(rest, k)
		}
	}
	s.fetchEach(ctx, cl, rest, deliver)
}

// FetchPath fetches every parameter under prefix (directly, or recursively),
// following pages, and delivers each as a plain decrypted parameter key. It
// returns the number of parameters found, and the error that stopped it.
func (s *Source) FetchPath(ctx context.Context, prefix string, recursive bool, deliver Deliver) (int, error) {
	ctx = batchContext(ctx)
	in := &ssm.GetParametersByPathInput{
		Path:           aws.String(prefix),
		Recursive:      aws.Bool(recursive),
		WithDecryption: aws.Bool(true),
		MaxResults:     aws.Int32(parametersPerPage),
	}
	n := 0
	seen := map[string]bool{} // NextTokens followed: a repeat would loop until the budget ran out
	for {
		var out *ssm.GetParametersByPathOutput
		err := s.call(ctx, APIGetParametersByPath, func(ctx context.Context) (err error) {
			out, err = s.home.ssm.GetParametersByPath(ctx, in)
			return err
		})
		if err != nil {
			return n, classify(Key{Service: ParameterStore, ID: prefix}, err)
		}
		for i := range out.Parameters {
			p := &out.Parameters[i]
			k := ParameterKey(aws.ToString(p.Name))
			deliver(k, parameterItem(k, p), nil)
			n++
		}
		next := aws.ToString(out.NextToken)
		if next == "" {
			return n, nil
		}
		if seen[next] {
			return n, &Error{Class: ClassOther, Code: "MalformedResponse", Message: "GetParametersByPath returned a NextToken it had returned before",
				Key: Key{Service: ParameterStore, ID: prefix}}
		}
		seen[next] = true
		in.NextToken = out.NextToken
	}
}

// chunks yields consecutive slices of at most n keys.
func chunks(keys []Key, n int) func(func([]Key) bool) {
	return func(yield func([]Key) bool) {
		for len(keys) > 0 {
			m := min(n, len(keys))
			if !yield(keys[:m:m]) {
				return
			}
			keys = keys[m:]
		}
	}
}
