// Command dpservice-orchestrator plays dp-service's orchestrator in the
// interop test (scripts/interop.sh): it initializes dp-service and creates
// VM interfaces, as metalnet or dpservice-cli would. dpcap itself never
// does either (Initialize resets dp-service's routes).
//
//	dpservice-orchestrator [--addr HOST:PORT] check
//	dpservice-orchestrator [--addr HOST:PORT] init
//	dpservice-orchestrator [--addr HOST:PORT] create ID DEVICE VNI IPV4 IPV6
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/dpcap/dpcap/control/dpservice/dpdkpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

func main() {
	addr := flag.String("addr", "localhost:1337", "dp-service's gRPC API")
	flag.Parse()
	if err := run(*addr, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "dpservice-orchestrator:", err)
		os.Exit(1)
	}
}

func run(addr string, args []string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	api := dpdkpb.NewDPDKironcoreClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	switch {
	case len(args) == 1 && args[0] == "check":
		// Answering at all, ABORTED "not initialized" included, is up.
		_, err := api.CheckInitialized(ctx, &dpdkpb.CheckInitializedRequest{})
		if c := status.Code(err); c != codes.OK && c != codes.Aborted {
			return fmt.Errorf("CheckInitialized: %w", err)
		}
		fmt.Println("dp-service answers:", status.Code(err))
	case len(args) == 1 && args[0] == "init":
		r, err := api.Initialize(ctx, &dpdkpb.InitializeRequest{}, grpc.WaitForReady(true))
		if err != nil {
			return fmt.Errorf("call Initialize: %w", err)
		}
		fmt.Printf("Initialize: status %d, uuid %s\n", r.GetStatus().GetCode(), r.GetUuid())
	case len(args) == 6 && args[0] == "create":
		vni, err := strconv.ParseUint(args[3], 10, 32)
		if err != nil {
			return fmt.Errorf("VNI %q: %w", args[3], err)
		}
		r, err := api.CreateInterface(ctx, &dpdkpb.CreateInterfaceRequest{
			InterfaceType: dpdkpb.InterfaceType_VIRTUAL, InterfaceId: []byte(args[1]), DeviceName: args[2], Vni: uint32(vni),
			Ipv4Config: &dpdkpb.IpConfig{PrimaryAddress: []byte(args[4])},
			Ipv6Config: &dpdkpb.IpConfig{PrimaryAddress: []byte(args[5])},
		})
		if err != nil {
			return fmt.Errorf("CreateInterface %s: %w", args[1], err)
		}
		if c := r.GetStatus().GetCode(); c != 0 {
			return fmt.Errorf("CreateInterface %s: status %d %s", args[1], c, r.GetStatus().GetMessage())
		}
		fmt.Printf("CreateInterface %s on %s: underlay route %s, VF %s\n", args[1], args[2], r.GetUnderlayRoute(), r.GetVf().GetName())
	default:
		return fmt.Errorf("usage: [--addr HOST:PORT] check | init | create ID DEVICE VNI IPV4 IPV6")
	}
	return nil
}
