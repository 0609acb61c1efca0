# The layers of libckpt: base (errors, types) <- mpi <- format <- core.
#
# ckpt_add_layer(<target> SOURCES <src>... [LAYERS <layers below>...]
#                [PUBLIC_LIBS <libs>...] [PRIVATE_LIBS <libs>...])
#
# Each layer below the core is an OBJECT library compiled with its own include/ folder and
# the include folders of the layers it names (and theirs) only, so an include the wrong
# way fails to compile. Its objects go into the one library users link, `ckpt`
# (libckpt/CMakeLists.txt), which adds them with $<TARGET_OBJECTS:...> and states the
# usage requirements itself: linking object libraries into an installed static library
# would put them into its export set.
function(ckpt_add_layer name)
  cmake_parse_arguments(PARSE_ARGV 1 arg "" "" "SOURCES;LAYERS;PUBLIC_LIBS;PRIVATE_LIBS")
  add_library(${name} OBJECT ${arg_SOURCES})
  target_include_directories(${name} PUBLIC ${CMAKE_CURRENT_SOURCE_DIR}/include)
  target_compile_features(${name} PUBLIC cxx_std_20)
  target_link_libraries(${name} PUBLIC ${arg_LAYERS} ${arg_PUBLIC_LIBS}
                                PRIVATE ${arg_PRIVATE_LIBS} ckpt_warnings)
  # In libckpt.so the objects must be position independent; for libckpt.a they follow
  # CMAKE_POSITION_INDEPENDENT_CODE like the core's own objects (on at the top level, which
  # `pip install .` relies on to link libckpt.a into the Python extension).
  if(CKPT_SHARED)
    set_target_properties(${name} PROPERTIES POSITION_INDEPENDENT_CODE ON)
  endif()
endfunction()
